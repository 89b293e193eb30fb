"""What reading text gives a user, through the product: the rendered-text collection is indexed
(vectors, then the text phase) and every word of 4+ letters written in a picture is searched
for with the default query (hybrid, cutoff on); a hit counts when a picture that shows the word
comes first. The issue's target: ≥ 90 % of such words find their picture first.

`python -m imgsearch.evaluation.ocr_search OUT_DIR --n 40`"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .ocr import TextCollection, build_text_collection


def search_scores(collection: TextCollection, home: Path, models: str = "tiny") -> dict[str, Any]:
    from imgsearch.library.local import LocalIndex
    from imgsearch.searcher.request import SearchRequest, words
    from imgsearch.settings import Settings

    shows: dict[str, set[str]] = {}
    for name, picture in collection.pictures.items():
        for w in picture.words:
            if len(w) >= 4:
                shows.setdefault(w.casefold(), set()).add(name)
    rows = []
    with LocalIndex(Settings(home=home, models=models, ocr=True)) as idx:
        report = idx.index([collection.folder], captions=False)
        for word, names in sorted(shows.items()):
            hits = idx.search(SearchRequest((words(word),), limit=5))
            first = Path(hits[0].path).name if hits else None
            rows.append({"word": word, "pictures": sorted(names), "first": first, "found": first in names})
    found = sum(r["found"] for r in rows)
    return {"words": len(rows), "found_first": found, "share": found / len(rows) if rows else None,
            "texts_read": report["texts_read"], "missed": [r for r in rows if not r["found"]][:20]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.evaluation.ocr_search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="where the pictures, the index and ocr_search.json go")
    p.add_argument("--n", type=int, default=40, help="pictures in the collection")
    p.add_argument("--seed", type=int, default=1717, help="collection seed")
    args = p.parse_args(argv)
    collection = build_text_collection(args.out_dir / "pictures", args.n, args.seed)
    scores = search_scores(collection, args.out_dir / "home")
    (args.out_dir / "ocr_search.json").write_text(json.dumps(scores, indent=1))
    print(f"{scores['found_first']} of {scores['words']} words of 4+ letters found their picture first "
          f"({scores['share']:.1%}); {scores['texts_read']} pictures read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
