"""Which requests the service answers at all. Anything that reaches its port is hostile until
shown otherwise: a web page in the user's own browser (DNS rebinding, cross-site forms and
images), another local user, another host on the network.

- Host: only names the service is addressed by on purpose — the loopback names with its port,
  the address it was bound to, names in `IMGSEARCH_ALLOWED_HOSTS`. A page whose name rebinds to
  127.0.0.1 sends its own name as Host and gets 421 for everything. Bound to a wildcard address
  (0.0.0.0, ::) with a token, any name is served: the token is then what keeps others out.
- Cross-site: a browser says where a request comes from (`Sec-Fetch-Site`, `Origin`). Requests
  from another site or another port of this one are refused (403), except a plain navigation to
  the page itself (a link or bookmark). Mutating methods also need a same-origin `Origin` when a
  browser sends one, so a cross-site form post (`Content-Type: text/plain`) never runs.
- Other users of this machine: a loopback connection is checked against the kernel's socket
  table (Linux: /proc/net/tcp), and one from another user (root aside) gets 403 — they cannot
  read the index folder either. Where no such table exists, the secret is the only gate.
- The secret: every service has one, kept in `service.json` (mode 600, readable by its owner
  only; the CLI reads it). Bound beyond loopback or given a `--token`, every request needs it;
  on loopback, the endpoints that make the service read new folders (`POST /api/index`) need it."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
COOKIE = "imgsearch_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints that need the secret even on loopback: they make the service read (and later serve)
# folders it was not given by its owner.
SECRET_PATHS = frozenset({"/api/index"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6][:port]` → (lower-case name without brackets, port); None when
    malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
    elif value.count(":") > 1:
        return None  # a bare IPv6 address is not a valid Host
    else:
        name, _, port = value.partition(":")
        rest = ":" + port if port else ""
    if not name:
        return None
    if not rest:
        return name, None
    # ASCII digits only: str.isdigit() is also true for '²' (a latin-1 byte any client may send),
    # which int() refuses: that was a 500 for a bad Host or Origin (issue 13 fuzzing).
    if not rest.startswith(":") or not (rest[1:].isascii() and rest[1:].isdigit()) or len(rest) > 6:
        return None
    return name, int(rest[1:])


@dataclass(frozen=True)
class Access:
    """What the guard lets through, fixed when the service binds."""

    port: int
    names: frozenset[str]  # host names served (lower case, IPv6 without brackets)
    secret: str  # the token in service.json
    token_for_all: bool  # every request needs the secret (bound beyond loopback, or --token given)
    any_name: bool = False  # a wildcard bind with a token: any Host

    @classmethod
    def for_bind(cls, host: str, port: int, secret: str, *, token_given: bool = False,
                 extra_names: Iterable[str] = ()) -> Access:
        names = {*LOOPBACK_NAMES, *(n.strip().lower().strip("[]") for n in extra_names if n.strip())}
        if not is_wildcard(host):
            names.add(host.lower().strip("[]"))
        beyond = not is_loopback(host)
        return cls(port, frozenset(names), secret, token_for_all=beyond or token_given,
                   any_name=beyond and is_wildcard(host))

    def host_ok(self, value: str | None) -> bool:
        parsed = split_host(value) if value else None
        if parsed is None:
            return False
        name, port = parsed
        if port is None:
            port = 80  # browsers leave out only the scheme's default port
        return port == self.port and (self.any_name or name in self.names)

    def origin_ok(self, origin: str) -> bool:
        scheme, sep, rest = origin.partition("://")
        return bool(sep) and scheme == "http" and "/" not in rest and self.host_ok(rest)

    def given_secret(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        for candidate in (request.query_params.get("token"), request.cookies.get(COOKIE),
                          header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None):
            if candidate and hmac.compare_digest(candidate.encode(), self.secret.encode()):
                return candidate
        return None


def _proc_address(host: str, port: int) -> str | None:
    """An address as /proc/net/tcp{,6} writes it: the address's 32-bit words in host byte order,
    in hex, then the port."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    packed = ip.packed
    words = [packed[i:i + 4] for i in range(0, len(packed), 4)]
    return "".join(int.from_bytes(w, "big").to_bytes(4, "little").hex().upper() for w in words) + f":{port:04X}"


def _proc_addresses(host: str, port: int) -> set[str]:
    """The ways the kernel may list an address: as itself, and an IPv4 one as IPv4-mapped IPv6."""
    found = {a for a in (_proc_address(host, port),) if a}
    if ":" not in host:
        mapped = _proc_address(f"::ffff:{host}", port)
        if mapped:
            found.add(mapped)
    return found


def peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The user owning the other end of a TCP connection on this machine, from the kernel's
    socket table; None where there is none to read (not Linux)."""
    mine, theirs = _proc_addresses(*client), _proc_addresses(*server)
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and fields[1] in mine and fields[2] in theirs:
                return int(fields[7])
    return -1 if readable else None  # -1: a table, but no such connection in it


def _peer_ok(request: Request) -> bool:
    client, server = request.client, request.scope.get("server")
    if client is None or not server or not is_loopback(client.host) or client.port == 0:
        return True  # not a loopback TCP peer (the token rules beyond loopback; tests have no socket)
    uid = peer_uid((client.host, client.port), (server[0], server[1]))
    return uid is None or uid in (os.getuid(), 0)


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def check(access: Access, request: Request) -> Response | None:
    """None when the request may go on; else the refusal to send."""
    if not access.host_ok(request.headers.get("host")):
        return _refuse(421, f"this service answers only requests addressed to it (127.0.0.1:{access.port}, "
                            f"localhost:{access.port}, [::1]:{access.port}); IMGSEARCH_ALLOWED_HOSTS adds names")
    if not _peer_ok(request):
        return _refuse(403, "this service belongs to another user of this machine")
    site = request.headers.get("sec-fetch-site")
    navigation = (request.method == "GET" and request.url.path == "/"
                  and request.headers.get("sec-fetch-mode") == "navigate")
    if site not in (None, "same-origin", "none") and not navigation:
        return _refuse(403, "requests from other sites are refused")
    origin = request.headers.get("origin")
    if request.method not in SAFE_METHODS and origin is not None and not access.origin_ok(origin):
        return _refuse(403, "requests from other sites are refused")
    if (access.token_for_all or request.url.path in SECRET_PATHS) and access.given_secret(request) is None:
        why = ("this service is bound beyond loopback" if access.token_for_all
               else "this endpoint makes the service read new folders")
        return _refuse(401, f"a token is required: {why}. Send Authorization: Bearer TOKEN "
                            "(the token is in service.json in the index folder, readable by its owner only).")
    return None


def install(app: Any, access: Access) -> None:
    """Put the guard in front of every route, the page and its assets included."""

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        refusal = check(access, request)
        if refusal is not None:
            return refusal
        response = await call_next(request)
        given = request.query_params.get("token")
        if given and hmac.compare_digest(given.encode(), access.secret.encode()):
            # a browser opens http://host:port/?token=T once; the cookie then carries it
            response.set_cookie(COOKIE, access.secret, httponly=True, samesite="strict")
        return response
