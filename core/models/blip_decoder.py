"""The captioner's text decoder: greedy decoding in which a caption that has ended stops costing
(`generate`), and int8 weights (torch dynamic quantization, fbgemm), admitted by measurement
beside the int8 vision tower (`blip_vision`).

Once the vision tower runs int8, decoding is over a third of a caption where torch runs fp32: each
of the 20 steps reads every weight of the 12-layer decoder and its 30,524-word head for only 16
rows, and fp32 products that thin run at memory speed (768×3072 for 16 rows: ~4 ms in fp32, ~0.5
ms with int8 weights, AVX2 EPYC). Quantized: every Linear but the cross-attention's key and value,
whose raw weights the absorbed cross-attention reads (`blip_attention`); weights int8 per output
channel, activations quantized per step.

Admitted like the towers, on the calibration pictures' fp32 vision states: fed fp32's own
captions (teacher forcing), the int8 decoder's next-token distributions must stay within a KL
divergence of fp32's (mean and worst token). Top-1 agreement and identical captions are reported,
not required: a random-weight model's distributions are nearly flat and their argmax flips on
rounding alone. Used only for a run with enough pictures to repay the quantization (measured at
build) or where IMGSEARCH_IMAGE_RUNTIME=onnx-int8 asks for it.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from typing import Any

import torch

log = logging.getLogger(__name__)

KEEP_FLOAT = ("crossattention.self.key", "crossattention.self.value")
LIMITS = {"kl_mean": 0.01, "kl_max": 0.1}  # nats, next-token distribution against fp32's


def quantized(decoder: torch.nn.Module) -> torch.nn.Module:
    """An int8 copy of an fp32 BLIP text decoder (the original is left as it was)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, module in decoder.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith(KEEP_FLOAT)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its eager quantization deprecated in favour of torchao
        return quantize_dynamic(decoder, spec, dtype=torch.qint8, inplace=False)


def is_quantized(decoder: torch.nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in decoder.modules())


def generate(decoder: Any, config: Any, states: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """Greedy captions' token ids from vision states (`config`: the model's text config): what
    `BlipForConditionalGeneration.generate` does after its vision tower, but a caption that has
    ended leaves the batch. transformers' `generate` computes every row until the last one ends;
    here a step costs only the captions still being written (the cross-attention over each
    picture's 577 states is most of a step once the weights are int8). Decoders whose generation
    config asks for more than plain greedy decoding go through `generate`."""
    if not _plain_greedy(decoder):
        return transformers_generate(decoder, config, states, max_tokens)
    n, device = states.shape[0], states.device
    out = torch.full((n, max_tokens + 1), config.pad_token_id, dtype=torch.long, device=device)
    out[:, 0] = config.bos_token_id
    rows = torch.arange(n, device=device)  # the captions still being written
    seen = torch.ones(states.shape[:2], dtype=torch.long, device=device)  # every vision token, every row
    ids, cache, written = out[:, :1], None, 1
    for step in range(1, max_tokens + 1):
        result = decoder(input_ids=ids, encoder_hidden_states=states, encoder_attention_mask=seen,
                         cache=cache, use_cache=True)
        token = result.logits[:, -1].argmax(-1)
        out[rows, step] = token
        written = step + 1
        going = token != config.sep_token_id
        if not bool(going.any()):
            break
        cache = result.cache
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            rows, states, seen, token = rows[keep], states[keep], seen[keep], token[keep]
            cache.batch_select_indices(keep)
        ids = token[:, None]
    return out[:, :written]


def _plain_greedy(decoder: Any) -> bool:
    """Whether the decoder's generation config adds nothing to greedy decoding."""
    config = getattr(decoder, "generation_config", None)
    if config is None:
        return True
    plain = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_length": 0, "min_new_tokens": None,
             "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
             "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None,
             "encoder_repetition_penalty": 1.0, "encoder_no_repeat_ngram_size": 0,
             "exponential_decay_length_penalty": None, "watermarking_config": None}
    return all(getattr(config, k, v) in (v, None) for k, v in plain.items())


def transformers_generate(decoder: Any, config: Any, states: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """transformers' own greedy `generate` from vision states, as BLIP's `generate` calls it."""
    start = torch.full((states.shape[0], 1), config.bos_token_id, dtype=torch.long, device=states.device)
    return decoder.generate(
        input_ids=start, eos_token_id=config.sep_token_id, pad_token_id=config.pad_token_id,
        encoder_hidden_states=states,
        encoder_attention_mask=torch.ones(states.shape[:2], dtype=torch.long, device=states.device),
        max_new_tokens=max_tokens, num_beams=1, do_sample=False)


def measure(model: Any, states: torch.Tensor, max_tokens: int, batch: int) -> dict[str, Any]:
    """The int8 decoder's record: admitted or not and why, with the seconds fp32 and int8 took
    to caption `states` (fp32 vision states) and the quantization's own seconds."""
    fp32 = copy.deepcopy(model.text_decoder).float().eval()
    started = time.perf_counter()
    int8 = quantized(fp32)
    quantize_s = time.perf_counter() - started
    config = model.config.text_config
    with torch.inference_mode():
        tokens, seconds = [], {}
        for name, decoder in (("fp32", fp32), ("int8", int8)):
            started = time.perf_counter()
            tokens.append(torch.cat([_pad(generate(decoder, config, states[i:i + batch], max_tokens), max_tokens + 1,
                                          config.pad_token_id) for i in range(0, len(states), batch)]))
            seconds[name] = time.perf_counter() - started
        figures = agreement(fp32, int8, tokens[0], states, config.pad_token_id)
    figures["identical_captions"] = float(sum(bool((a == b).all()) for a, b in zip(*tokens)) / len(states))
    failed = [f"{k} {figures[k]:.4f} > {LIMITS[k]}" for k in LIMITS if figures[k] > LIMITS[k]]
    said = (f"next-token KL to fp32 mean {figures['kl_mean']:.4f}, max {figures['kl_max']:.4f} nats; top-1 "
            f"agreement {figures['top1']:.3f}; identical captions {figures['identical_captions']:.2f} (n={len(states)})")
    return {**{k: round(v, 6) for k, v in figures.items()}, "admitted": not failed,
            "why": said if not failed else f"{', '.join(failed)} ({said})",
            "fp32_s": round(seconds["fp32"], 2), "int8_s": round(seconds["int8"], 2), "quantize_s": round(quantize_s, 2),
            "pictures": len(states)}


def agreement(reference: torch.nn.Module, candidate: torch.nn.Module, tokens: torch.Tensor, states: torch.Tensor,
              pad: int) -> dict[str, float]:
    """Teacher-forced on `tokens` (the reference's captions): KL(reference || candidate) of each
    next-token distribution, and how often the candidate's top token is the reference's."""
    mask = (tokens != pad).long()
    mask[:, 0] = 1
    atts = torch.ones(states.shape[:2], dtype=torch.long)
    kwargs = {"input_ids": tokens, "attention_mask": mask, "encoder_hidden_states": states, "encoder_attention_mask": atts}
    want = reference(**kwargs).logits.float().log_softmax(-1)
    got = candidate(**kwargs).logits.float().log_softmax(-1)
    kl = (want.exp() * (want - got)).sum(-1)[mask.bool()]
    scored = mask[:, 1:].bool()
    top1 = (got[:, :-1].argmax(-1) == tokens[:, 1:])[scored].float().mean()
    return {"kl_mean": float(kl.mean()), "kl_max": float(kl.max()), "top1": float(top1)}


def _pad(tokens: torch.Tensor, width: int, pad: int) -> torch.Tensor:
    return torch.nn.functional.pad(tokens, (0, width - tokens.shape[1]), value=pad)


def worth_it(record: dict[str, Any], pictures: int) -> bool:
    """Whether quantizing repays itself over `pictures` captions (the build's timings)."""
    saved = (record["fp32_s"] - record["int8_s"]) / max(record["pictures"], 1)
    return saved > 0 and pictures * saved >= record["quantize_s"]


def use_int8_decoder(model: Any, record: dict[str, Any] | None, runtime: Any, pictures: int, forced: bool) -> str:
    """Put the int8 decoder in place where admitted and worth it; returns what runs it and why."""
    if is_quantized(model.text_decoder):
        return "int8: in place already"
    if record is None:
        return "torch: not measured"
    if runtime.dtype != torch.float32 or runtime.device.type != "cpu":
        return f"torch {runtime.describe()}: int8 is for fp32 on the CPU"
    if not record.get("admitted"):
        return f"torch: int8 refused ({record.get('why')})"
    if not forced and not worth_it(record, pictures):
        return (f"torch: {pictures} pictures do not repay the quantization ({record['quantize_s']} s; decoding "
                f"{record['pictures']} pictures took {record['fp32_s']} s fp32, {record['int8_s']} s int8)")
    try:
        model.text_decoder = quantized(model.text_decoder)
    except Exception as exc:  # torch without its eager quantization: only speed is lost
        log.warning("the captioner's decoder stays fp32 (%s)", exc)
        return f"torch: quantization failed ({type(exc).__name__}: {exc})"
    return f"int8: admitted ({record['why']})"
