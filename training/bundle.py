"""Copy trained models into the package (`core/bundled/tiny/`) in the formats production reads:
the open_clip folder (config, safetensors, tokenizer) and the two BLIP `save_pretrained` folders.

    python -m training.bundle runs/clip runs/blip
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "core" / "bundled" / "tiny"
KEEP = {".json", ".safetensors", ".txt"}


def copy_folder(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.suffix in KEEP and f.name != "train.log":
            shutil.copy2(f, dst / f.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("clip", type=Path)
    ap.add_argument("blip", type=Path)
    args = ap.parse_args()
    copy_folder(args.clip, BUNDLE / "clip")
    copy_folder(args.blip / "captioner", BUNDLE / "captioner")
    copy_folder(args.blip / "itm", BUNDLE / "itm")
    total = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    print(f"bundled into {BUNDLE}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
