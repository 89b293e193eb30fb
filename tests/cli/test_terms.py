"""What a QUERY on the command line becomes: a picture file, a picture at an http(s) URL (served
here by a real HTTP server on loopback), or words with an optional weight."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.cli.terms import term
from imgsearch.errors import ConfigError
from imgsearch.searcher.request import IMAGE, TEXT


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    picture = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(picture)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", picture
    finally:
        server.shutdown()
        server.server_close()


def test_a_file_and_a_url_are_pictures(served: tuple[str, Path]) -> None:
    url, picture = served
    from_file = term(str(picture))
    assert from_file.kind == IMAGE and from_file.data == picture.read_bytes() and from_file.text == str(picture)
    from_url = term(f"{url}/red.png", negative=True)
    assert from_url.kind == IMAGE and from_url.data == picture.read_bytes() and from_url.weight == -1.0
    with pytest.raises(ConfigError, match="cannot fetch"):
        term(f"{url}/missing.png")


def test_everything_else_is_words_with_an_optional_weight(tmp_path: Path) -> None:
    plain = term("a red bicycle")
    assert (plain.kind, plain.text, plain.weight) == (TEXT, "a red bicycle", 1.0)
    heavy = term("2.5:at the beach", negative=True)
    assert (heavy.text, heavy.weight) == ("at the beach", -2.5)
    assert term(str(tmp_path / "no-such.jpg")).kind == TEXT  # not a file: words
