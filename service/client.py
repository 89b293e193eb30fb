"""Find a running service for these settings and talk to it (stdlib only: the CLI imports this
without torch, SQLAlchemy or Qdrant, so a query through the service starts in a blink)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.settings import Settings


class ServiceError(ImgsearchError):
    """The running service refused or failed a request; its message says why."""


@dataclass(frozen=True)
class ServiceClient:
    url: str
    token: str | None = None
    timeout: float = 120.0

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._call(urllib.request.Request(f"{self.url}{path}{'?' + query if query else ''}"))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        return self._call(urllib.request.Request(f"{self.url}{path}", data=data, method="POST",
                                                 headers={"Content-Type": "application/json"}))

    def delete(self, path: str) -> Any:
        return self._call(urllib.request.Request(f"{self.url}{path}", method="DELETE"))

    def _call(self, request: urllib.request.Request, timeout: float | None = None) -> Any:
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read()).get("detail")
            except ValueError:
                detail = None
            raise ServiceError(f"the service at {self.url} answered {e.code}: {detail or e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ServiceError(f"the service at {self.url} did not answer ({e}); "
                               "is it still running? (imgsearch service status)") from None


def read_service_file(settings: Settings) -> dict[str, Any] | None:
    try:
        return json.loads(settings.service_file.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_service_file(settings: Settings) -> dict[str, Any] | None:
    """The service file of this data directory when the process it names still runs."""
    info = read_service_file(settings)
    if not info or not isinstance(info.get("pid"), int) or not _alive(info["pid"]):
        return None
    return info


def find_service(settings: Settings) -> ServiceClient | None:
    """The service serving this data directory and model profile, if one runs and answers."""
    info = running_service_file(settings)
    if info is None:
        return None
    client = ServiceClient(str(info["url"]), info.get("token"))
    try:
        client._call(urllib.request.Request(f"{client.url}/api/health"), timeout=3.0)
    except ServiceError:
        return None
    return client
