"""The one set of limits on a query, checked the same way wherever a query comes from (the CLI
with or without a running service, the HTTP API, the page), with one message that says what to
do. Stdlib only: the CLI checks before it loads anything."""

from __future__ import annotations

from imgsearch.errors import ConfigError

MAX_LIMIT = 10_000  # results in one answer
MAX_RERANK_K = 1_000  # BLIP ITM passes for one query: ~1,000 is minutes on a CPU already
MAX_QUERY_CHARS = 1_000  # CLIP reads at most 77 tokens (~60 words); more is a mistake


class QueryLimitError(ConfigError):
    """A query outside the limits (exit code 2; the API answers 422)."""


def check_query(text: str, limit: int, rerank_k: int = 0) -> None:
    check_words(text)
    check_limit(limit)
    check_rerank_k(rerank_k)


def check_words(text: str) -> None:
    if not text.strip():
        raise QueryLimitError("the query is empty: say what to look for, e.g. imgsearch query \"red bicycle\"")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryLimitError(f"the query is {len(text):,} characters long; at most {MAX_QUERY_CHARS:,} are "
                              "accepted (CLIP reads only the first ~60 words)")


def check_rerank_k(rerank_k: int) -> None:
    if not 0 <= rerank_k <= MAX_RERANK_K:
        raise QueryLimitError(f"the rerank depth (rerank-k) must be between 0 and {MAX_RERANK_K:,} (got {rerank_k:,})")


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryLimitError(f"the limit (how many results) must be between 1 and {MAX_LIMIT:,} (got {limit:,})")
