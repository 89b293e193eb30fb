"""Copy trained models into the package (`core/bundled/tiny/`) in the formats production reads:
the open_clip folder (config, safetensors, tokenizer) and the two BLIP `save_pretrained` folders.

    python -m training.bundle --clip runs/clip --blip runs/blip    # either one alone also works
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[1] / "core" / "bundled" / "tiny"
KEEP = {".json", ".safetensors", ".txt"}


def copy_folder(src: Path, dst: Path) -> None:
    if src.resolve() == dst.resolve():
        raise SystemExit(f"{src} is already the bundled folder")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.suffix in KEEP and f.name != "train.log":
            shutil.copy2(f, dst / f.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clip", type=Path, help="a train_clip output folder")
    ap.add_argument("--blip", type=Path, help="a train_blip output folder (captioner/ and itm/)")
    args = ap.parse_args()
    if args.clip is None and args.blip is None:
        ap.error("give --clip, --blip or both")
    if args.clip is not None:
        copy_folder(args.clip, BUNDLE / "clip")
    if args.blip is not None:
        copy_folder(args.blip / "captioner", BUNDLE / "captioner")
        copy_folder(args.blip / "itm", BUNDLE / "itm")
    total = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    print(f"bundled into {BUNDLE}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
