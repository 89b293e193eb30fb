"""`auto` precision on a CPU: bf16 only where oneDNN has bf16 instructions *and* a bf16 product
measured clearly faster than fp32 here (a CPU with AVX512-BF16 but no AMX ran bf16 at 0.55x)."""

from __future__ import annotations

import math

import pytest
import torch

from imgsearch.models import runtime


@pytest.fixture(autouse=True)
def fresh_measurement():
    runtime.cpu_has_fast_bf16.cache_clear()
    yield
    runtime.cpu_has_fast_bf16.cache_clear()


@pytest.mark.parametrize("instructions,ratio,expected", [
    (False, 0.3, torch.float32),   # no bf16 instructions: never timed, fp32
    (True, 1.6, torch.float32),    # AVX512-BF16 without AMX, as measured: slower, fp32
    (True, 0.79, torch.bfloat16),  # clearly faster (AMX): bf16
    (True, 0.95, torch.float32),   # about even: not worth bf16's accuracy
])
def test_auto_takes_bf16_only_where_it_measured_faster(monkeypatch: pytest.MonkeyPatch, instructions: bool,
                                                        ratio: float, expected: torch.dtype) -> None:
    timed = []
    monkeypatch.setattr(runtime, "onednn_has_bf16", lambda: instructions)
    monkeypatch.setattr(runtime, "bf16_speed_ratio", lambda: timed.append(1) or ratio)
    assert runtime.pick_runtime("cpu").dtype == expected
    assert runtime.pick_runtime("cpu", "bfloat16").dtype == torch.bfloat16  # asked for: given
    runtime.pick_runtime("cpu")
    assert len(timed) == (1 if instructions else 0)  # measured once per process


def test_the_measurement_times_both_precisions_on_this_cpu() -> None:
    """Timed on one thread (steady when other programs load the CPU); torch's threads are as
    they were after it, for the models."""
    threads = torch.get_num_threads()
    seen: list[int] = []
    original = torch.nn.Linear.forward
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Linear, "forward",
                      lambda self, x: seen.append(torch.get_num_threads()) or original(self, x))
        ratio = runtime.bf16_speed_ratio(rounds=2)
    assert math.isfinite(ratio) and ratio > 0
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == threads
