"""The captioner's decoder (the bundled tiny captioner): greedy decoding that drops the captions
that have ended gives transformers' `generate`'s ids; int8 weights measured and admitted at the
vision tower's build, put in place beside the int8 tower, its captions those of fp32; a damaged
decoder is refused by the same check; auto quantizes only for a run that repays it; and
`imgsearch status` says what ran the decoder."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from imgsearch.models import Models
from imgsearch.models.blip_decoder import (LIMITS, agreement, generate, is_quantized, quantized, transformers_generate,
                                          use_int8_decoder, worth_it)
from imgsearch.models.blip_vision import read_meta
from imgsearch.models.runtime import Runtime
from imgsearch.settings import Settings
from PIL import Image

CPU32 = Runtime(torch.device("cpu"), torch.float32)


def test_forced_int8_quantizes_the_decoder_and_captions_stay(
        tmp_path: Path, tiny_models: Callable[..., Models], shapes_pictures: list[Image.Image],
) -> None:
    from imgsearch.cli.app import app
    from typer.testing import CliRunner

    plain = tiny_models("torch", image_runtime="torch").captioner
    int8 = tiny_models("int8", image_runtime="onnx-int8").captioner
    want, got = plain.caption(shapes_pictures), int8.caption(shapes_pictures)
    assert is_quantized(int8.model.text_decoder) and not is_quantized(plain.model.text_decoder)
    assert sum(a == b for a, b in zip(want, got)) >= 0.9 * len(shapes_pictures), list(zip(want, got))
    record = read_meta(Settings(home=tmp_path / "int8", models="tiny").index_dir, "captioner")["decoder"]
    assert record["admitted"] and record["kl_mean"] <= LIMITS["kl_mean"] and record["top1"] >= 0.95, record["why"]
    assert record["pictures"] == 16 and record["fp32_s"] > 0 and record["int8_s"] > 0
    home = str(tmp_path / "int8")
    status = json.loads(CliRunner().invoke(app, ["status", "--home", home, "--models", "tiny", "--json"]).output)
    assert status["image_runtime"]["blip_vision"]["captioner"]["decoder"].startswith("int8: admitted")
    assert "captioner decoder" in CliRunner().invoke(app, ["status", "--home", home, "--models", "tiny"]).output


def test_the_check_refuses_a_damaged_decoder(torch_captioner: tuple[Any, torch.Tensor]) -> None:
    captioner, states = torch_captioner
    model, config = captioner.model, captioner.model.config.text_config
    with torch.inference_mode():
        tokens = generate(model.text_decoder, config, states, 20)
        same = agreement(model.text_decoder, quantized(model.text_decoder), tokens, states, config.pad_token_id)
        damaged = copy.deepcopy(model.text_decoder)
        head = damaged.cls.predictions.decoder
        head.weight = torch.nn.Parameter(head.weight + 0.5 * head.weight.std() * torch.randn_like(head.weight))
        broken = agreement(model.text_decoder, damaged, tokens, states, config.pad_token_id)
    assert same["kl_mean"] <= LIMITS["kl_mean"] and same["top1"] >= 0.95, same
    assert broken["kl_mean"] > LIMITS["kl_mean"] and broken["kl_max"] > LIMITS["kl_max"], broken


def test_quantized_only_where_admitted_repaid_and_fp32(tiny_models: Callable[..., Models]) -> None:
    record = {"admitted": True, "why": "ok", "fp32_s": 6.0, "int8_s": 4.0, "quantize_s": 3.0, "pictures": 16}
    assert not worth_it(record, 23) and worth_it(record, 24)  # 0.125 s saved a picture repays 3 s at 24
    assert not worth_it({**record, "int8_s": 6.5}, 10_000)  # slower: never
    model = tiny_models("torch", image_runtime="torch").captioner.model
    said = use_int8_decoder(model, record, CPU32, 10, forced=False)
    assert said.startswith("torch: 10 pictures do not repay") and not is_quantized(model.text_decoder)
    refused = use_int8_decoder(model, {**record, "admitted": False, "why": "kl_mean 0.5 > 0.01"}, CPU32, 100, True)
    assert "refused" in refused and not is_quantized(model.text_decoder)
    bf16 = Runtime(torch.device("cpu"), torch.bfloat16)
    assert "fp32 on the CPU" in use_int8_decoder(model, record, bf16, 100, True)
    assert use_int8_decoder(model, record, CPU32, 24, forced=False).startswith("int8")
    assert is_quantized(model.text_decoder)


def test_an_export_made_before_the_decoder_was_measured_is_rebuilt_by_a_large_run(
        tiny_models: Callable[..., Models],
) -> None:
    first = tiny_models("home", image_runtime="onnx-int8")
    first.captioner.vision.expect(12)
    path = first.settings.index_dir / "blip-vision" / "captioner" / "meta.json"
    older = json.loads(path.read_text())
    del older["decoder"]
    path.write_text(json.dumps(older))
    small = tiny_models("home", image_runtime="auto", blip_export_min_pictures=10)
    small.captioner.vision.expect(3)  # too few pictures to rebuild: the tower is used as it is
    assert "decoder" not in read_meta(small.settings.index_dir, "captioner")
    large = tiny_models("home", image_runtime="auto", blip_export_min_pictures=10)
    large.captioner.vision.expect(12)
    assert read_meta(large.settings.index_dir, "captioner")["decoder"]["admitted"]


def test_decoding_drops_ended_captions_and_gives_generate_s_ids(
        torch_captioner: tuple[Any, torch.Tensor], shapes_pictures: list[Image.Image],
) -> None:
    captioner, states = torch_captioner
    model, config = captioner.model, captioner.model.config.text_config
    rows: list[int] = []
    hook = model.text_decoder.register_forward_pre_hook(lambda _, args, kw: rows.append(kw["input_ids"].shape[0]),
                                                        with_kwargs=True)
    with torch.inference_mode():
        ours = generate(model.text_decoder, config, states, 20)
        hook.remove()
        upstream = transformers_generate(model.text_decoder, config, states, 20)
    assert torch.equal(ours, upstream)
    lengths = (ours != config.pad_token_id).sum(1)
    assert int(lengths.min()) < int(lengths.max())  # captions of different lengths: rows left early
    assert rows[0] == len(states) and min(rows) < len(states) and sum(rows) == int((lengths - 1).sum())
    texts = captioner.processor.batch_decode(ours, skip_special_tokens=True)
    assert [" ".join(t.split()) for t in texts] == captioner.caption(shapes_pictures)


def test_a_generation_config_beyond_greedy_goes_through_generate(torch_captioner: tuple[Any, torch.Tensor]) -> None:
    captioner, states = torch_captioner
    model, config = captioner.model, captioner.model.config.text_config
    with torch.inference_mode():
        greedy = generate(model.text_decoder, config, states, 20)
        model.text_decoder.generation_config.min_new_tokens = 12  # no caption may end before 12 tokens
        penalised = generate(model.text_decoder, config, states, 20)
        assert torch.equal(penalised, transformers_generate(model.text_decoder, config, states, 20))
    assert not torch.equal(penalised[:, :greedy.shape[1]], greedy[:, :penalised.shape[1]])
