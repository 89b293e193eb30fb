"""bench.md's sections for the phases after the vectors: words from pixels (the text phase, OCR)
and zero-shot tags. Both name the CPU: neither runs on torch's bf16 path alone (OCR is ONNX
Runtime, tags are numpy and SQLite), so its figures move with the CPU more than with the profile."""

from __future__ import annotations

from typing import Any

from .stats import fmt

KIND_NAMES = {
    "text": "with text (1-3 lines of words on photo-like clutter)",
    "no-text": "without text (the same clutter, no words)",
    "shapes": "without text (shapes-world scenes)",
}
OCR_TARGET = 5.0  # the issue's: pictures without text at least 5× as fast as pictures with text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _cpu(results: dict[str, Any]) -> str:
    m = results["machine"]
    flags = ", ".join(m["cpu_bf16_flags"]) or "no AVX512-BF16/AMX"
    return f"{m['cpu']}, {m['usable_cpus']} usable CPUs ({flags})"


def ocr_section(results: dict[str, Any]) -> list[str]:
    if not results.get("ocr"):
        return []
    row = results["ocr"][0]
    setup = row["setup"]
    rows = []
    for kind, k in row["kinds"].items():
        found = "/".join(str(f) for f in k["found"])
        size = f"{k['sides'][0]}–{k['sides'][1]} px, {k['mean_megapixels']:.2f} MP, {k['mean_kb']:.0f} KB"
        rows.append([KIND_NAMES.get(kind, kind), str(k["pictures"]), size,
                     fmt(k["phase_pics_s"], 2), fmt(k["phase_ms"], 0), fmt(k["reader_pics_s"], 2),
                     fmt(k["reader_ms"], 0), f"{found} of {k['pictures']}"])
    ratios = []
    for kind, r in row["vs_text"].items():
        ratios.append([f"{KIND_NAMES.get(kind, kind)} / with text", fmt(r["phase"], 2) + " ×",
                       fmt(r["reader"], 2) + " ×"])
    lines = [
        "## Words from pixels (text phase, OCR)", "",
        f"On {_cpu(results)}; {_runs(results, row['runs'])}. Reader `{setup['reader']}`, "
        f"{setup['threads']} ONNX Runtime threads, detection at {setup['det_side']} px, lines read from "
        f"a copy of at most {setup['max_side']} px; engine made in {fmt(row['engine_s'], 2)} s (one untimed "
        "read) before anything is timed. Pictures: the OCR evaluation's "
        "(`imgsearch.evaluation.ocr.build_text_collection`), split by kind, and shapes-world scenes. "
        "Phase = `imgsearch.indexer.texts.read_pending` over an index of that kind's folder alone (tiny "
        f"models, built untimed), every text forgotten first: decoding ({setup['decode_workers']} decode "
        "workers), reading, storing in the catalog. Reader alone = `TextReader.read` on the same pictures "
        "decoded beforehand, one call after another. Text found: pictures the phase found any text on, "
        "per run.", ""]
    lines += _table(["pictures", "n", "size", "phase pictures/s", "phase ms per picture",
                     "reader alone pictures/s", "reader alone ms per picture", "text found (phase)"], rows)
    lines += [f"Speed ratios, run by run (the issue's target: pictures without text ≥ {OCR_TARGET:g}× as "
              "fast as pictures with text):", ""]
    lines += _table(["ratio of pictures/s", "phase", "reader alone"], ratios)
    return lines


def tags_section(results: dict[str, Any]) -> list[str]:
    if not results.get("tags"):
        return []
    names = {"tiny": "tiny (bundled)", "default-random": "default (base sizes, random weights)"}
    rows = []
    for t in results["tags"]:
        vocabulary = "the profile's own" if t["vocabulary"] == "own" else t["vocabulary"]
        rows.append([
            names.get(t["profile"], t["profile"]), f"{vocabulary}: {t['classes']} classes, {t['labels']} "
            f"labels, {t['prompts']} prompts", str(t["dim"]), fmt(t["tagger_load_s"], 2),
            fmt(t["tag_ms_per_1000"], 1), f"{t['labels_per_vector']:.2f}",
            fmt(t["phase_s_per_1000"], 3), fmt(t["phase_stores_ms_per_1000"], 0),
            f"{t['pictures']:,}", f"{t['labels_per_picture']:.2f}", t.get("runtime", "?"),
        ])
    first = results["tags"][0]
    lines = [
        "## Zero-shot tags", "",
        f"On {_cpu(results)}; {_runs(results, first['runs'])}. Vocabulary load = `Models.tagger` with "
        "CLIP already loaded: every prompt (classes × phrases × templates) through CLIP's text tower, once "
        f"per process. tag() = `Tagger.tag` on {first['vectors']:,} random unit vectors, median of "
        "several calls, given per 1,000. Phase = `imgsearch.indexer.tagging.tag_pending` over an index of "
        "shapes-world pictures (no captions or texts), every picture's tags forgotten before each timing, "
        "median of several, per 1,000 pictures; \"stores\" = the phase less the time inside tag() (catalog "
        "reads and writes, the vector store's fetch). With random weights the softmax is nearly flat, so "
        "few labels pass the threshold: labels kept are shown beside the times.", ""]
    lines += _table(["profile", "vocabulary", "dim", "vocabulary load s", "tag() ms per 1,000 vectors",
                     "labels kept per vector", "phase s per 1,000 pictures", "of which stores ms",
                     "pictures in the phase", "labels kept per picture", "CLIP runtime"], rows)
    return lines


def _runs(results: dict[str, Any], runs: int) -> str:
    where = "each in a fresh process" if results["plan"]["isolated"] else "in one shared worker (smoke mode)"
    return f"median (min–max) over {runs} run{'s' if runs != 1 else ''}, {where}"
