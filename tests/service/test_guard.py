"""What the service refuses: requests addressed by another name (DNS rebinding), requests from
other sites, new folders without the secret, ids and queries outside the limits. Over the real
app and stores (TestClient), each as a hostile page or client would send it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from imgsearch.searcher.limits import MAX_LIMIT, QueryLimitError, check_query
from imgsearch.service.api import create_app
from imgsearch.service.guard import Access, split_host

PORT, SECRET = 7861, "the-secret"
BASE = f"http://127.0.0.1:{PORT}"
EVIL = "http://evil.example:7861"


@pytest.fixture(scope="module")
def client(engine) -> TestClient:
    return TestClient(create_app(engine[0], Access.for_bind("127.0.0.1", PORT, SECRET)), base_url=BASE)


@pytest.fixture(scope="module")
def image_id(engine) -> int:
    return min(engine[0].stores.catalog.vector_ids())


def _everything(image_id: int) -> list[str]:
    return ["/", "/static/app.js", "/api/docs", "/api/openapi.json", "/api/health", "/api/status",
            "/api/search?q=a+red+circle&rerank_k=0", f"/api/images/{image_id}",
            f"/api/images/{image_id}/original", f"/api/images/{image_id}/thumbnail",
            f"/api/images/{image_id}/similar"]


@pytest.mark.parametrize("host", ["evil.example:7861", "evil.example", "127.0.0.1:9999", "localhost",
                                  "127.0.0.2:7861", "localhost.evil.example:7861", "[::2]:7861", "",
                                  "127.0.0.1:7861:7861", "[::1"])
def test_a_rebinding_page_gets_4xx_for_everything(client: TestClient, image_id: int, host: str) -> None:
    for path in _everything(image_id):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 421, (host, path, r.status_code)
        assert "photos" not in r.text and "/" not in r.json()["detail"].split("(")[0]
    r = client.post("/api/index", json={"paths": ["/etc"]}, headers={"Host": host,
                                                                     "Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1:7861", "localhost:7861", "LOCALHOST:7861", "[::1]:7861"])
def test_loopback_names_with_the_port_are_served(client: TestClient, image_id: int, host: str) -> None:
    for path in _everything(image_id):
        assert client.get(path, headers={"Host": host}).status_code == 200, (host, path)


def test_other_names_only_when_bound_to_them_on_purpose() -> None:
    lan = Access.for_bind("192.168.1.5", 80, SECRET, extra_names=["photos.lan"])
    assert lan.host_ok("192.168.1.5") and lan.host_ok("192.168.1.5:80") and lan.host_ok("photos.lan")
    assert lan.token_for_all and not lan.host_ok("evil.example") and not lan.host_ok("192.168.1.5:81")
    wildcard = Access.for_bind("0.0.0.0", 7861, SECRET)
    assert wildcard.token_for_all and wildcard.host_ok("anything.example:7861")
    loopback = Access.for_bind("127.0.0.1", 7861, SECRET)
    assert not loopback.token_for_all and not loopback.host_ok("0.0.0.0:7861")
    assert split_host("[::1]:7861") == ("::1", 7861) and split_host("::1") is None


def test_adding_folders_needs_the_secret_the_cli_has(client: TestClient) -> None:
    """A loopback connection is not enough to make the service read /etc."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET},
                    {"Cookie": "imgsearch_token=wrong"}):
        r = client.post("/api/index", json={"paths": ["/etc"]}, headers=headers)
        assert r.status_code == 401 and "service.json" in r.json()["detail"]
    r = client.post("/api/index", json={"paths": ["/etc"]}, headers={"Authorization": f"Bearer {SECRET}"})
    assert r.status_code == 503  # past the guard: this app has no worker


def test_cross_site_requests_are_refused(client: TestClient, image_id: int) -> None:
    reveal = f"/api/images/{image_id}/reveal"
    form_post = {"Origin": EVIL, "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}
    assert client.post(reveal, content=b"x=1", headers=form_post).status_code == 403
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Origin": f"http://127.0.0.1:{PORT + 1}"},
                    {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"https://127.0.0.1:{PORT}"}):
        assert client.post(reveal, headers=headers).status_code == 403, headers
    # an <img> or fetch on another site (or another port of this one) reads nothing either
    for site in ("cross-site", "same-site"):
        for path in (f"/api/images/{image_id}/thumbnail", f"/api/images/{image_id}/original", "/api/status"):
            assert client.get(path, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors"}).status_code == 403
    # the page itself, and clients that are not browsers, go through
    page = {"Origin": BASE, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert client.post(reveal, headers=page).status_code == 200
    assert client.post(reveal).status_code == 200
    # a link or bookmark from elsewhere may open the page (it then talks same-origin)
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code == 200


@pytest.mark.parametrize("big", [2**63, 2**64, 10**30])
def test_ids_past_sqlite_integers_are_refused_not_crashed(client: TestClient, big: int) -> None:
    for path in (f"/api/images/{big}", f"/api/images/{big}/original", f"/api/images/{big}/similar",
                 f"/api/images/{big}/thumbnail", f"/api/jobs/{big}"):
        assert client.get(path).status_code in (404, 422), path
    assert client.post(f"/api/images/{big}/reveal").status_code in (404, 422)
    assert client.get(f"/api/images/{2**63 - 1}").status_code == 404


def test_limits_are_the_clis_and_never_echo_the_query(client: TestClient) -> None:
    long_query = "quarterly tax report " * 500
    for params in ({"q": long_query}, {"q": "x", "limit": MAX_LIMIT + 1}, {"q": "x", "rerank_k": 100_000},
                   {"q": "x", "limit": 0}, {"q": "   "}, {"q": "x", "limit": "many"}):
        r = client.get("/api/search", params=params)
        assert r.status_code == 422, params
        assert "quarterly" not in r.text and "input" not in r.json()
    r = client.get("/api/search", params={"q": "x", "limit": 20_000})
    with pytest.raises(QueryLimitError) as cli_side:
        check_query("x", 20_000)
    assert r.json()["detail"] == str(cli_side.value)
