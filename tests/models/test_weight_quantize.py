"""The vectorized per-channel weight quantization writes exactly the graph ONNX Runtime's own loop
writes (int8 with and without the reduced range, uint8, a MatMul and a Gemm, a channel of zeros,
weights per tensor), and leaves ONNX Runtime's quantizer as it was once done."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType
from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
from onnxruntime.quantization.base_quantizer import BaseQuantizer

from imgsearch.models import weight_quantize
from imgsearch.models.weight_quantize import quantize_dynamic


def _model(path: Path) -> None:
    """x (n, 32) -> MatMul (32, 48), one output channel all zeros, one all positive -> Gemm
    (48, 16) with a bias -> y: the shapes a transformer's linear layers take."""
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.05, (32, 48)).astype(np.float32)
    w1[:, 3] = 0.0
    w1[:, 5] = np.abs(w1[:, 5]) + 0.01
    w2 = rng.normal(0, 0.2, (48, 16)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 16).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize(("weight_type", "reduce_range", "per_channel"), [
    (QuantType.QInt8, True, True),  # what the product uses (`image_export.quantize`)
    (QuantType.QInt8, False, True),
    (QuantType.QUInt8, False, True),  # asymmetric: zero points of their own
    (QuantType.QInt8, True, False),  # per tensor: not this module's step, unchanged
])
def test_same_graph_as_onnxruntimes_loop(tmp_path: Path, weight_type: QuantType, reduce_range: bool,
                                         per_channel: bool) -> None:
    _model(tmp_path / "fp32.onnx")
    options = dict(op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel, reduce_range=reduce_range,
                   weight_type=weight_type)
    ort_quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "ort.onnx"), **options)
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "fast.onnx"), **options)
    want, got = onnx.load(str(tmp_path / "ort.onnx")), onnx.load(str(tmp_path / "fast.onnx"))
    assert any(i.name.endswith("_quantized") for i in got.graph.initializer)
    assert got.SerializeToString() == want.SerializeToString()
    x = np.random.default_rng(1).normal(0, 1, (4, 32)).astype(np.float32)
    y = onnxruntime.InferenceSession(str(tmp_path / "fast.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    assert y.shape == (4, 16) and np.isfinite(y).all()


def test_onnxruntimes_method_comes_back() -> None:
    before = BaseQuantizer.quantize_weight_per_channel_impl
    with weight_quantize.vectorized():
        with weight_quantize.vectorized():  # another thread's build inside this one's
            assert BaseQuantizer.quantize_weight_per_channel_impl is weight_quantize._per_channel
        assert BaseQuantizer.quantize_weight_per_channel_impl is weight_quantize._per_channel
    assert BaseQuantizer.quantize_weight_per_channel_impl is before
