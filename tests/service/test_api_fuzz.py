"""Issue 13 (hardening): the HTTP API fuzzed from its own OpenAPI schema (schemathesis), over the
real app and stores of the `engine` fixture (tests/conftest.py). Whatever is sent: no 5xx, and no
answer shows a path outside the indexed files, the contents of /etc/passwd or a Python traceback.

Bounded for CI: a fixed number of examples per operation, derandomized (the same requests on
every run). `IMGSEARCH_FUZZ_EXAMPLES=500` makes a long local run.

Each generated request goes out with several header sets: as a local client without the token, as
the CLI (with `Authorization: Bearer SECRET`), and as a hostile page or host (another Host name,
a cross-site fetch, a foreign Origin): those must get 4xx, never a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import response_schema_conformance

from imgsearch.indexer.pipeline import normalise_roots
from imgsearch.service import api as api_module
from imgsearch.service.api import create_app
from imgsearch.service.guard import Access, split_host
from imgsearch.service.worker import Job, Worker

PORT, SECRET = 7861, "fuzz-secret"
BASE = f"http://127.0.0.1:{PORT}"
EVIL = f"http://evil.example:{PORT}"
EXAMPLES = int(os.environ.get("IMGSEARCH_FUZZ_EXAMPLES", "30"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

TOKEN = {"Authorization": f"Bearer {SECRET}"}
# (headers, must be refused): the token never helps a request addressed by another name or sent
# by another site.
HEADER_SETS: list[tuple[dict[str, str], bool]] = [
    ({}, False),
    (TOKEN, False),
    ({**TOKEN, "Host": f"evil.example:{PORT}"}, True),
    ({**TOKEN, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Origin": EVIL}, True),
]
# A foreign Origin without Sec-Fetch-Site (an old browser): refused for POST; a GET that says
# nothing about its site is a plain client and may be answered.
FOREIGN_ORIGIN = {**TOKEN, "Origin": EVIL}

TRACEBACK = "Traceback (most recent call last)"
PASSWD = "root:x:0:0"
# An absolute path inside a string: starts at a slash not preceded by a name character (so
# `image/webp` and `a/b` are no paths), runs to a space, a quote or a bracket. `sqlite:////x` and
# `file:///x` count (their slashes fold into one); web addresses (`http://host/...`) do not.
ABSOLUTE = re.compile(r"(?<![\w./~\\-])/[^\s\"'<>|;,()\[\]{}]+")


def absolute_paths(string: str) -> Iterator[str]:
    for match in ABSOLUTE.finditer(string):
        if string[:match.start()].endswith(("http:", "https:")):
            continue
        yield "/" + match.group().lstrip("/").rstrip(".:")


class FuzzWorker(Worker):
    """The service's real `Worker.submit` (normalise the paths, queue a Job, list it in `jobs`),
    but the thread is never started: fuzzed paths ("/", "~", "/etc") are parsed for real and
    never indexed. Records every list of paths it was given."""

    def __init__(self, engine: Any) -> None:
        from imgsearch.service.worker import Roots

        roots = Roots(engine.settings.index_dir, [])  # what /api/facets lists: no watched folder here
        super().__init__(engine, roots=roots, collector=None, watcher=None)  # type: ignore[arg-type]
        self.submitted: list[list[str]] = []

    def submit(self, paths: list[str], captions: bool = True, precompute_rerank: bool = False) -> Job:
        self.submitted.append(list(paths))
        return super().submit(paths, captions, precompute_rerank)

    def start(self) -> None:
        raise AssertionError("the fuzzing worker must never index anything")

    def run(self) -> None:
        raise AssertionError("the fuzzing worker must never index anything")


class Desktop:
    """Stands in for `subprocess` in service/api.py: /reveal must not open windows on the machine
    running the tests."""

    DEVNULL = subprocess.DEVNULL

    def __init__(self) -> None:
        self.opened: list[list[str]] = []

    def Popen(self, args: list[str], **_: Any) -> None:  # noqa: N802 (the name it replaces)
        self.opened.append(list(args))


@pytest.fixture(scope="module")
def fuzz_app(engine) -> Iterator[types.SimpleNamespace]:
    patch = pytest.MonkeyPatch()
    desktop = Desktop()
    patch.setattr(api_module, "subprocess", desktop)
    worker = FuzzWorker(engine[0])
    app = create_app(engine[0], Access.for_bind("127.0.0.1", PORT, SECRET), worker)
    # bound to every address with a token: any Host name is served, the token keeps others out
    wildcard = create_app(engine[0], Access.for_bind("0.0.0.0", PORT, SECRET), worker)
    yield types.SimpleNamespace(app=app, wildcard=wildcard, worker=worker, desktop=desktop)
    patch.undo()


# What a random generator rarely hits by itself, mixed into what schemathesis generates (about
# half the examples): the ids that exist, folders and names an attacker would try, queries with
# NUL bytes and numbers that are not quite numbers.
HOSTILE_PATHS = ["/", "/etc", "/etc/passwd", "/proc/self/environ", "~", "~/", "~root", "~root/.ssh",
                 "~\x00", "~root\x00/x", "~nobody-such-user/x", "\x00", "/tmp/a\x00b", "", ".", "..",
                 "../../..", "//", "~/" + "a" * 5000, "/" + "x" * 300, "file:///etc/passwd",
                 "\\\\server\\share", "C:\\Windows"]
HOSTILE_QUERIES = ["\x00", "a\x00b", "../../etc/passwd", "%00", "' OR 1=1 --", "{{7*7}}", "\u202eevil",
                   "\U0001F642" * 10, "a" * 1000, "a" * 1001, "     ", "\t\n", "\ufeff", "<script>x</script>",
                   "\x00" * 1000]
ODD_NUMBERS = ["9" * 40, "-" + "9" * 40, "1e3", "NaN", "inf", "0x10", "", " 5", "5 ", "+5", "٣", "1_000",
               "\x00"]


def _hostile_path_parameters(ids: list[int]):
    specials = [*ids, 0, -1, 2**63 - 1, 2**63, 2**64, 10**30, 1, 2, 3]

    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy:
        names = [n for n in ("file_id", "job_id") if n in (path_parameters or {})]
        if not isinstance(path_parameters, dict) or not names:
            return st.just(path_parameters)
        return st.one_of(st.just(path_parameters),
                         st.sampled_from(specials).map(lambda v: {**path_parameters, names[0]: v}))

    return flatmap_path_parameters


def flatmap_query(context: Any, query: dict[str, Any]) -> st.SearchStrategy:
    if not isinstance(query, dict) or not query:
        return st.just(query)
    odd = st.one_of(st.fixed_dictionaries({"q": st.sampled_from(HOSTILE_QUERIES)}),
                    st.fixed_dictionaries({"limit": st.sampled_from(ODD_NUMBERS)}),
                    st.fixed_dictionaries({"rerank_k": st.sampled_from(ODD_NUMBERS)}))
    return st.one_of(st.just(query), odd.map(lambda changes: {**query, **changes}))


def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    if not isinstance(body, dict) or "paths" not in body:
        return st.just(body)
    paths = st.lists(st.one_of(st.sampled_from(HOSTILE_PATHS), st.text(max_size=20)), min_size=1, max_size=4)
    return st.one_of(st.just(body), paths.map(lambda p: {**body, "paths": p}))


@pytest.fixture(scope="module")
def api_schema(fuzz_app, engine):
    config = schemathesis.Config.from_dict({
        "seed": 13,  # the same requests on every run (with `deterministic`, per operation)
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
    })
    # loaded through the guard, as any client would: addressed as 127.0.0.1:PORT
    loaded = schemathesis.openapi.from_asgi("/api/openapi.json", fuzz_app.app, config=config,
                                            headers={"Host": f"127.0.0.1:{PORT}"})
    ids = sorted(engine[0].stores.catalog.vector_ids())
    loaded.hooks.register_hook_with_name(_hostile_path_parameters(ids), "flatmap_path_parameters")
    loaded.hooks.register_hook_with_name(flatmap_query, "flatmap_query")
    loaded.hooks.register_hook_with_name(flatmap_body, "flatmap_body")
    return loaded


@pytest.fixture(scope="module")
def client(fuzz_app) -> TestClient:
    return TestClient(fuzz_app.app, base_url=BASE)


# --- what no answer may show -----------------------------------------------------------------------

def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif value is not None and not isinstance(value, NotSet):
        yield str(value)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def assert_no_leak(status: int, content_type: str, body: bytes, *, route: str, engine, worker: FuzzWorker,
                   sent: list[str]) -> None:
    """No file's contents, no traceback, no absolute path but the indexed folder and what it holds.

    Allowed besides: API links (`/api/...`); what the request itself carried (a query is echoed
    back); in an index job's answer (`/api/index`, `/api/jobs/N`) the folders asked for, as the
    worker normalised them (`~` and relative names resolved the way the service will read them:
    the caller named them). /api/status reports where the catalog and the vector store are
    (`catalog`, `vector_store`): that is what status is for (`imgsearch status` prints the same)
    and only clients the guard lets in get it. Anywhere else the data home (the index folder,
    thumbnails, roots.json) must not appear."""
    assert PASSWD.encode() not in body and TRACEBACK.encode() not in body, (route, status, body[:500])
    if body and not content_type.startswith(("application/json", "text/")):
        return  # an image (thumbnail or original): bytes, checked above
    text = body.decode("utf-8", "replace")
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = text
    folder, home = str(engine[1]), str(engine[0].settings.home)
    if route == "/api/status" and isinstance(document, dict) and status == 200:
        for key in ("catalog", "vector_store"):  # `sqlite:////home/...`, `/home/... (embedded Qdrant Edge)`
            assert all(_under(p, home) for p in absolute_paths(str(document[key]))), (key, document[key])
        document = {k: v for k, v in document.items() if k not in ("catalog", "vector_store")}
    echoes = set(sent)
    if route == "/api/index" or route.startswith("/api/jobs/"):
        for paths in worker.submitted:
            echoes.update(paths)
            echoes.update(str(p) for p in normalise_roots([Path(p) for p in paths]))
    for string in _strings(document):
        for found in absolute_paths(string):
            if found.startswith(("/api/", "/static/")) or _under(found, folder):
                continue
            if any(found in echo for echo in echoes):
                continue
            pytest.fail(f"{route} ({status}) shows a path outside the indexed files: {found!r} "
                        f"in {string[:300]!r}")
        assert home not in string or any(home in echo for echo in echoes), (route, status, string[:300])


def test_the_leak_check_catches_leaks(engine, fuzz_app) -> None:
    """The checker above is what the fuzzing relies on: it must not pass everything."""
    home = engine[0].settings.home
    leaks = [
        {"detail": f"cannot write {home / 'imgsearch-tiny' / 'thumbnails' / 'ab.webp'}"},
        {"detail": "no such file: '/etc/shadow'"}, {"detail": f"in {os.getcwd()}"},
        {"catalog": f"sqlite:///{home}/catalog.sqlite3"},  # only /api/status may say where the catalog is
        {"x": "root:x:0:0:root:/root:/bin/bash"}, {"x": f"{TRACEBACK}:\n  File \"/srv/app.py\", line 1"},
        {"hits": [{"path": str(engine[1].parent / "elsewhere" / "a.jpg")}]},
    ]
    for leak in leaks:
        caught = AssertionError if "root:x" in str(leak) or TRACEBACK in str(leak) else pytest.fail.Exception
        with pytest.raises(caught):
            assert_no_leak(200, "application/json", json.dumps(leak).encode(), route="/api/search",
                           engine=engine, worker=fuzz_app.worker, sent=["x"])
    fine = {"query": "/etc/passwd", "type": "image/webp", "hits": [
        {"path": str(engine[1] / "a.jpg"), "folder": str(engine[1]), "thumbnail": "/api/images/1/thumbnail"}]}
    assert_no_leak(200, "application/json", json.dumps(fine).encode(), route="/api/search", engine=engine,
                   worker=fuzz_app.worker, sent=["/etc/passwd"])


# --- schemathesis over every operation -------------------------------------------------------------

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis' fixture-loaded schemas read `item._nodeid`, which pytest 9.2 no longer has
    (it keeps `_id`; `nodeid` is a property): give it the attribute it expects."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _sent(case: Any) -> list[str]:
    return [*(_strings(case.path_parameters)), *(_strings(case.query)), *(_strings(case.body)),
            *(_strings(case.headers)), *(_strings(case.cookies))]


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_request_gets_a_server_error_or_a_leak(case, fuzz_app, engine) -> None:
    sent = _sent(case)
    variants = [*HEADER_SETS, (FOREIGN_ORIGIN, case.method.upper() not in ("GET", "HEAD", "OPTIONS"))]
    for headers, refused in variants:
        response = case.call(base_url=BASE, headers=headers)
        # every answer, errors included ({"detail": "one line"}), is what the schema documents
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance],
                               headers=headers)
        if refused:
            assert 400 <= response.status_code < 500, (headers, response.status_code, response.text[:300])
        content_type = (response.headers.get("content-type") or [""])[0]  # schemathesis: name -> values
        assert_no_leak(response.status_code, content_type, response.content,
                       route=case.operation.path, engine=engine, worker=fuzz_app.worker, sent=sent)


# --- plain hypothesis: the inputs that matter most, straight at the routes --------------------------

ID_ROUTES = ["/api/images/{}", "/api/images/{}/similar", "/api/images/{}/thumbnail",
             "/api/images/{}/original", "/api/jobs/{}"]
ANY_ID = st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.text(), st.integers(0, 20),
                   st.sampled_from(["1", "01", "1.0", "+1", " 1", "1 ", "-0", "0x1", "1e3", "٣", "%00", "..",
                                    ".", "", "1/../2", "9" * 400]))


def _segment(value: Any) -> str:
    """One path segment as a client would put it on the wire: percent-encoded, a lone surrogate as
    the bytes it would be (not UTF-8 at all)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def _check(response: Any, engine, fuzz_app, sent: list[str]) -> None:
    assert response.status_code < 500, (response.request.method, str(response.request.url)[:300],
                                        response.status_code, response.text[:300])
    assert_no_leak(response.status_code, response.headers.get("content-type", ""), response.content,
                   route=response.request.url.path, engine=engine, worker=fuzz_app.worker, sent=sent)


@given(value=ANY_ID)
@FUZZ_SETTINGS
def test_ids_of_any_shape_never_crash(client: TestClient, engine, fuzz_app, value: Any) -> None:
    for route in ID_ROUTES:
        _check(client.get(route.format(_segment(value))), engine, fuzz_app, [str(value)])
    _check(client.post(f"/api/images/{_segment(value)}/reveal"), engine, fuzz_app, [str(value)])


@given(paths=st.lists(st.one_of(st.sampled_from(HOSTILE_PATHS), st.text()), min_size=1, max_size=4),
       captions=st.one_of(st.booleans(), st.sampled_from([None, 0, 2, "yes", "", [], {}])))
@FUZZ_SETTINGS
def test_index_requests_of_any_shape_never_crash(client: TestClient, engine, fuzz_app, paths: list[str],
                                                 captions: Any) -> None:
    body = json.dumps({"paths": paths, "captions": captions})
    r = client.post("/api/index", content=body, headers={**TOKEN, "Content-Type": "application/json"})
    _check(r, engine, fuzz_app, paths)


HUGE = st.integers(min_value=-2**70, max_value=2**70)


@given(q=st.one_of(st.sampled_from(HOSTILE_QUERIES), st.text()),
       limit=st.one_of(st.none(), HUGE, st.sampled_from(ODD_NUMBERS), st.text(max_size=8)),
       rerank_k=st.one_of(st.none(), HUGE, st.sampled_from(ODD_NUMBERS)))
@FUZZ_SETTINGS
def test_queries_of_any_shape_never_crash(client: TestClient, engine, fuzz_app, q: str, limit: Any,
                                          rerank_k: Any) -> None:
    """Sent as raw bytes: NUL bytes, lone surrogates (bytes that are no UTF-8), numbers past int64."""
    query = f"q={_segment(q)}"
    if limit is not None:
        query += f"&limit={_segment(limit)}"
    if rerank_k is not None:
        query += f"&rerank_k={_segment(rerank_k)}"
    _check(client.get(f"/api/search?{query}"), engine, fuzz_app, [q, str(limit), str(rerank_k)])


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60)
CONTENT_TYPES = st.one_of(st.sampled_from([
    "application/json", "application/json; charset=latin-1", "application/json; charset=nonsense",
    "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=x", "application/octet-stream", "application/xml",
    "application/merge-patch+json", "application/vnd.api+json", "*/*", "", ";", "application/json;;;",
    "APPLICATION/JSON"]), HEADER_TEXT)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'{"paths": []}', b'{"paths": "/etc"}', b'{"paths": [null]}',
                     b'{"paths": ["\\ud800"]}', b'{"paths": ["~\\u0000"]}', b'{"paths": [1e999]}',
                     b'{"paths": ["/"], "captions": "maybe"}', b"paths=/etc", b"[" * 10000,
                     b'{"paths": ["/"]' + b"]" * 5000, b"\xff\xfe{\x00}\x00", b'{"paths": ["\xe9"]}']),
    st.lists(st.one_of(st.sampled_from(HOSTILE_PATHS), st.text(max_size=10)), max_size=3).map(
        lambda p: json.dumps({"paths": p}).encode()),
)


@given(content_type=CONTENT_TYPES, body=BODIES, route=st.sampled_from(["/api/index", "/api/images/1/reveal"]))
@FUZZ_SETTINGS
def test_bodies_and_content_types_of_any_shape_never_crash(
        client: TestClient, engine, fuzz_app, content_type: str, body: bytes, route: str) -> None:
    r = client.post(route, content=body, headers={**TOKEN, "Content-Type": content_type})
    _check(r, engine, fuzz_app, [body.decode("utf-8", "replace"), content_type])


def test_a_nul_byte_in_a_folder_is_refused_not_crashed(client: TestClient, fuzz_app) -> None:
    """Found by the fuzzer: `~\\x00` made os.path.expanduser raise ValueError (a 500)."""
    before = len(fuzz_app.worker.submitted)
    for paths in (["~\x00"], ["~root\x00/x"], ["/photos", "/tmp/a\x00b"]):
        r = client.post("/api/index", json={"paths": paths}, headers=TOKEN)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], (paths, r.status_code, r.text)
    assert len(fuzz_app.worker.submitted) == before  # nothing was queued
    ok = client.post("/api/index", json={"paths": ["~/Pictures"]}, headers=TOKEN)
    assert ok.status_code == 202 and ok.json()["paths"] == [os.path.expanduser("~/Pictures")]


def test_the_schema_documents_the_errors_the_service_sends(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    answer = document["paths"]["/api/search"]["get"]["responses"]["422"]["content"]["application/json"]
    schema_of = answer["schema"]
    if "$ref" in schema_of:
        schema_of = document["components"]["schemas"][schema_of["$ref"].rsplit("/", 1)[-1]]
    assert schema_of["properties"]["detail"].get("type") == "string"


# Header values travel as latin-1 bytes: any of its characters may arrive, none of CR, LF or NUL.
LATIN1 = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xff, exclude_characters="\x7f"),
                 max_size=40)
ODD_PORTS = ["7861", "07861", "²", "7861²", "¹³", "-1", "+7861", " 7861", "99999999"]
HOSTS = st.one_of(LATIN1, st.builds(lambda name, port: f"{name}:{port}",
                                    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "evil.example", ""]),
                                    st.one_of(LATIN1, st.sampled_from(ODD_PORTS))))
OURS = {("127.0.0.1", PORT), ("localhost", PORT), ("::1", PORT)}


def raw_request(app: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """One request straight into the ASGI app, its headers the latin-1 bytes a server hands over.
    (TestClient re-encodes header values as UTF-8: a byte such as 0xB2 never arrives as sent.) An
    exception in the app propagates: the test fails with its traceback."""
    answer: dict[str, Any] = {"status": 0, "type": "", "body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["type"] = dict(message.get("headers", [])).get(b"content-type", b"").decode("latin-1")
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
             # not a loopback peer: the guard's same-user check needs a real socket (tests have none)
             "client": ("testclient", 50000), "server": ("127.0.0.1", PORT)}
    asyncio.run(app(scope, receive, send))
    return answer["status"], answer["type"], answer["body"]


@given(host=HOSTS, origin=st.one_of(st.none(), HOSTS.map(lambda h: f"http://{h}"), LATIN1),
       site=st.one_of(st.none(), st.sampled_from(["same-origin", "none", "cross-site", "same-site"]), LATIN1),
       method=st.sampled_from(["GET", "POST"]), wildcard=st.booleans())
@example(host="127.0.0.1:²", origin=None, site=None, method="GET", wildcard=False)
@example(host=f"127.0.0.1:{PORT}", origin="http://127.0.0.1:¹³", site=None, method="POST", wildcard=False)
@example(host="a[b:²", origin="http://[::1", site=None, method="POST", wildcard=True)
@FUZZ_SETTINGS
def test_hostile_host_and_origin_headers_get_4xx_not_5xx(engine, fuzz_app, host: str, origin: str | None,
                                                         site: str | None, method: str,
                                                         wildcard: bool) -> None:
    """Found by this test: a port spelt with a latin-1 digit (`Host: 127.0.0.1:²`) was a 500."""
    headers = {"host": host, **({"origin": origin} if origin is not None else {}),
               **({"sec-fetch-site": site} if site is not None else {})}
    path = "/api/status" if method == "GET" else "/api/images/1/reveal"
    app = fuzz_app.wildcard if wildcard else fuzz_app.app
    status, content_type, body = raw_request(app, method, path, headers)
    assert status < 500, (headers, status, body[:300])
    if not wildcard and split_host(host) not in OURS:
        assert status == 421, (headers, status, body[:300])  # another name: refused, whatever else it sends
    assert_no_leak(status, content_type, body, route=path, engine=engine, worker=fuzz_app.worker,
                   sent=list(headers.values()))


def test_a_port_that_is_no_ascii_number_is_refused_not_crashed(fuzz_app) -> None:
    """Found by the fuzzer: '²'.isdigit() is true and int('²') raises, so `Host: 127.0.0.1:²` (or
    such an Origin on a POST) was a 500 from the guard."""
    assert split_host("127.0.0.1:²") is None and split_host("127.0.0.1:7861") == ("127.0.0.1", 7861)
    assert raw_request(fuzz_app.app, "GET", "/api/status", {"host": "127.0.0.1:²"})[0] == 421
    assert raw_request(fuzz_app.app, "POST", "/api/images/1/reveal",
                       {"host": f"127.0.0.1:{PORT}", "origin": "http://127.0.0.1:¹"})[0] == 403
