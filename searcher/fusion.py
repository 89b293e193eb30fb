"""How ITM and CLIP scores combine into the final order of the reranked top K.

BLIP's own retrieval rule adds the ITM match score to the ITC similarity. We keep that shape
with the ITM *probability* (bounded, comparable across queries) and measure the variants on the
bundled models' evaluation (see the model card): the default is the one that measured best.
"""

from __future__ import annotations

FUSIONS = ("itm+clip", "itm+itc", "itm")


def fuse(kind: str, itm_prob: float, clip_cos: float, blip_itc: float) -> float:
    if kind == "itm+clip":
        return itm_prob + clip_cos
    if kind == "itm+itc":
        return itm_prob + blip_itc
    if kind == "itm":
        return itm_prob
    raise ValueError(f"unknown fusion {kind!r}: choose one of {', '.join(FUSIONS)}")
