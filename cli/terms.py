"""What a QUERY on the command line is: a picture file (indexed or not), an http(s) URL of a
picture, or words (`2:beach` weighs twice). Pictures are read here, on the client's side, and
travel as bytes: a service on another machine never needs this one's disk."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from imgsearch.errors import ConfigError
from imgsearch.searcher.request import IMAGE, MAX_IMAGE_BYTES, Term, words

URL_TIMEOUT = 30.0


def term(text: str, negative: bool = False) -> Term:
    sign = -1.0 if negative else 1.0
    if text.startswith(("http://", "https://")):
        return Term(IMAGE, text, sign, data=_fetch(text))
    path = os.path.expanduser(text)
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"cannot read {text}: {e.strerror or e}") from None
        return Term(IMAGE, os.path.abspath(path), sign, data=data)
    return words(text, negative)


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "imgsearch"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:
            return response.read(MAX_IMAGE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ConfigError(f"cannot fetch {url}: {getattr(e, 'reason', None) or e}") from None
