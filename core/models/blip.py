"""BLIP through transformers: the captioner (image-grounded decoder, LM) and the ITM model
(image-grounded text encoder + match head) used to rerank.

ITM reranking splits BLIP's forward in two: the vision states of a picture (the costly part,
cached per image by the searcher) and the cross-attention text pass over many candidates at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from imgsearch.models.blip_decoder import generate
from imgsearch.models.blip_vision import VisionChoice
from imgsearch.models.hub import is_local, model_ref_id, require_hub
from imgsearch.models.runtime import Runtime


# Pictures through a vision tower at once: its attention holds a batch's scores (12 heads × 577²
# a picture at 384 px, ~16 MB in fp32; ONNX Runtime's int8 tower is called on fewer still,
# `blip_vision.RUN_BATCH`). The captioner's decoder takes the whole caption batch at once.
VISION_BATCH = 16


def _from_pretrained(cls: Any, ref: str, what: str, override: str, **kw: Any) -> Any:
    """Load from a local folder or the hub's cache without the network; go online only when
    the hub answers, else fail at once with what to do."""
    if is_local(ref):
        return cls.from_pretrained(ref, local_files_only=True, **kw)
    try:
        return cls.from_pretrained(ref, local_files_only=True, **kw)
    except OSError:
        require_hub(what, ref, override)
        return cls.from_pretrained(ref, **kw)


@dataclass
class Captioner:
    model: Any
    processor: Any
    runtime: Runtime
    model_id: str
    max_tokens: int = 20
    # What runs the vision tower: torch, or an admitted ONNX int8 export (`blip_vision`); set by
    # `Models`, chosen before the first picture.
    vision: VisionChoice | None = None

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        if self.vision is not None:
            self.vision.ensure()
        states = torch.cat([_vision_states(self, images[i:i + VISION_BATCH])
                            for i in range(0, len(images), VISION_BATCH)])
        out = generate(self.model.text_decoder, self.model.config.text_config, states, self.max_tokens)
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]


@dataclass
class ItmScorer:
    model: Any
    processor: Any
    runtime: Runtime
    model_id: str
    vision: VisionChoice | None = None  # as `Captioner.vision`

    @torch.inference_mode()
    def vision_states(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, tokens, hidden) states of the vision encoder: what cross-attention reads."""
        if self.vision is not None:
            self.vision.ensure()
        return _vision_states(self, images)

    @torch.inference_mode()
    def score(self, text: str, states: torch.Tensor) -> tuple[list[float], list[float]]:
        """Match probability (ITM head) and ITC cosine of one text against N pictures' states. A
        text holding a word the tokenizer does not know (its unknown token) matches nothing: the
        head never learnt what such a word means, so its probability is no evidence (the small
        bundled models know only their world's words; a real BLIP's WordPiece splits any word)."""
        states = states.to(self.runtime.device, self.runtime.dtype)
        n = states.shape[0]
        longest = int(self.model.config.text_config.max_position_embeddings)
        tokenizer = self.processor.tokenizer
        enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=min(64, longest))
        ids = enc.input_ids.to(self.runtime.device)
        mask = enc.attention_mask.to(self.runtime.device)
        if tokenizer.unk_token_id is not None and bool((enc.input_ids == tokenizer.unk_token_id).any()):
            match = torch.zeros(n)
        else:
            atts = torch.ones(states.shape[:2], dtype=torch.long, device=self.runtime.device)
            cross = self.model.text_encoder(
                input_ids=ids.expand(n, -1), attention_mask=mask.expand(n, -1),
                encoder_hidden_states=states, encoder_attention_mask=atts,
            ).last_hidden_state
            match = F.softmax(self.model.itm_head(cross[:, 0]).float(), dim=-1)[:, 1]
        text_only = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        text_feat = F.normalize(self.model.text_proj(text_only[:, 0]).float(), dim=-1)
        image_feat = F.normalize(self.model.vision_proj(states[:, 0]).float(), dim=-1)
        itc = (image_feat @ text_feat.t()).squeeze(1)
        return match.cpu().tolist(), itc.cpu().tolist()


def _vision_states(blip: Captioner | ItmScorer, images: Sequence[Image.Image]) -> torch.Tensor:
    """(N, tokens, hidden) states of `blip`'s vision tower (torch's or the ONNX stand-in)."""
    pixels = blip.processor(images=list(images), return_tensors="pt").pixel_values
    x = pixels.to(blip.runtime.device, blip.runtime.dtype)
    return blip.model.vision_model(pixel_values=x).last_hidden_state


def _quiet_transformers() -> None:
    """transformers draws its own loading bars and warnings; ours are the CLI's."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_captioner(ref: str, runtime: Runtime, max_tokens: int = 20) -> Captioner:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from imgsearch.models.blip_attention import absorb_cross_attention, fuse_vision_attention

    _quiet_transformers()
    what, env = "BLIP captioner", "IMGSEARCH_CAPTIONER"
    processor = _from_pretrained(BlipProcessor, ref, what, env)
    model = _from_pretrained(BlipForConditionalGeneration, ref, what, env, dtype=runtime.dtype)
    fuse_vision_attention(model.vision_model)
    absorb_cross_attention(model.text_decoder.bert)  # no cross K/V prefill when generating
    return Captioner(model.to(runtime.device).eval(), processor, runtime, model_ref_id(ref), max_tokens)


def load_itm(ref: str, runtime: Runtime) -> ItmScorer:
    from transformers import BlipForImageTextRetrieval, BlipProcessor

    from imgsearch.models.blip_attention import absorb_cross_attention, fuse_vision_attention

    _quiet_transformers()
    what, env = "BLIP ITM", "IMGSEARCH_ITM"
    processor = _from_pretrained(BlipProcessor, ref, what, env)
    model = _from_pretrained(BlipForImageTextRetrieval, ref, what, env, dtype=runtime.dtype)
    fuse_vision_attention(model.vision_model)
    absorb_cross_attention(model.text_encoder)  # same scores, far less work per candidate
    return ItmScorer(model.to(runtime.device).eval(), processor, runtime, model_ref_id(ref))
