"""The page's install() on a bare FastAPI app: the page, its assets with the right types and
caching headers, and nothing in any shipped asset that would reach beyond this machine."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imgsearch.webui import install

ASSETS = {
    "app.js": "javascript",
    "dupes.js": "javascript",
    "dupes.css": "text/css",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
    "index.html": "text/html",
}
# The one http:// string allowed: SVG's XML namespace, an identifier no browser fetches.
SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install(app)
    return TestClient(app)


def test_page_is_the_same_html_for_any_query_string(client: TestClient) -> None:
    plain = client.get("/")
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="static/app.js">' in plain.text
    assert 'href="static/style.css"' in plain.text
    assert 'id="results"' in plain.text and 'type="search"' in plain.text
    for query in ("?q=red+circle&rerank=1&k=20&n=50", "?like=3", "?token=secret"):
        other = client.get("/" + query)
        assert other.status_code == 200 and other.text == plain.text
    assert "secret" not in client.get("/?token=secret").text


def test_page_headers_keep_it_local_and_fresh(client: TestClient) -> None:
    headers = client.get("/").headers
    assert headers["cache-control"] == "no-cache"
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(("name", "content_type"), ASSETS.items())
def test_assets_are_served_with_their_types_and_revalidated(client: TestClient, name: str,
                                                             content_type: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert content_type in response.headers["content-type"]
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    shipped = (files("imgsearch.webui") / "static" / name).read_bytes()
    assert response.content == shipped
    again = client.get(f"/static/{name}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_unknown_asset_is_404_and_nothing_outside_static_is_reachable(client: TestClient) -> None:
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../__init__.py").status_code == 404
    assert client.get("/static/%2e%2e/__init__.py").status_code == 404


def test_every_shipped_asset_is_here_and_nothing_points_elsewhere() -> None:
    static = files("imgsearch.webui") / "static"
    shipped = sorted(p.name for p in static.iterdir())
    assert shipped == sorted(ASSETS), "a new asset needs a content-type check here"
    for name in shipped:
        text = (static / name).read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not re.search(r"https?://", text, re.IGNORECASE), name
        assert not re.search(r"""(src|href)\s*=\s*["']//""", text), f"{name}: protocol-relative URL"


def test_script_never_writes_html_strings_into_the_page() -> None:
    script = (files("imgsearch.webui") / "static" / "app.js").read_text(encoding="utf-8")
    for sink in (".innerHTML", ".outerHTML", ".insertAdjacentHTML(", "document.write(", "eval("):
        assert sink not in script, sink
