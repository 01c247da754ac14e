"""A loopback GitHub REST server for tests: the endpoints the Action uses, with state and failure injection.

Records every call (method, path, query, headers, JSON body); holds issue comments per issue (paginated
with real `Link` headers), collaborator permissions per user, pull requests; injects failures (a 500
once, a 429 or a secondary rate limit with `retry-after`) on chosen routes.

    with GitHubServer() as gh:
        gh.permissions["alice"] = "write"
        client = GitHubClient(gh.url, "tok", "octo/repo")
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    """Answer `times` matching calls with `status` (+ headers) instead of handling them."""

    method: str
    path: str  # regex matched against the path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    message: str = "injected failure"


class GitHubServer:
    """Threaded loopback server; use as a context manager. All state is plain attributes, lock-guarded."""

    def __init__(self, repository: str = "Codertocat/Hello-World") -> None:
        self.repository = repository
        self.calls: list[Call] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.permissions: dict[str, str] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.created_pulls: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self.default_page_size = 30
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> GitHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- helpers for tests ------------------------------------------------------------------------------

    def add_comment(self, issue: int, body: str, user: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            return self._add_comment(issue, body, user or {"login": "someone", "id": 7, "type": "User"})

    def requests(self, method: str, path_regex: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and re.search(path_regex, c.path)]

    def fail(self, method: str, path: str, status: int, *, times: int = 1, **headers: str) -> None:
        self.failures.append(Failure(method, path, status, {k.replace("_", "-"): v for k, v in headers.items()}, times))

    def _add_comment(self, issue: int, body: str, user: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": user,
            "html_url": f"https://github.com/{self.repository}/pull/{issue}#issuecomment-{self._next_id}",
        }
        self.comments.setdefault(issue, []).append(comment)
        return comment

    # ---- HTTP -------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with server._lock:
                    server.calls.append(
                        Call(
                            method,
                            parts.path,
                            parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    for failure in server.failures:
                        if failure.times > 0 and failure.method == method and re.search(failure.path, parts.path):
                            failure.times -= 1
                            self._reply(failure.status, {"message": failure.message}, failure.headers)
                            return
                    status, payload, headers = server._route(method, parts.path, parse_qs(parts.query), body)
                self._reply(status, payload, headers)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        return Handler

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        repo = "/repos/" + self.repository
        if not path.startswith(repo + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(repo) :]
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            issue = int(m.group(1))
            if method == "GET":
                return self._page(path, self.comments.get(issue, []), query)
            if method == "POST":
                return 201, self._add_comment(issue, body["body"], BOT), {}
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(1)):
                        comment["body"] = body["body"]
                        return 200, comment, {}
            return 404, {"message": "Not Found"}, {}
        if (m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)) and method == "GET":
            perm = self.permissions.get(m.group(1), "read")
            return 200, {"permission": perm, "role_name": perm, "user": {"login": m.group(1)}}, {}
        if (m := re.fullmatch(r"/pulls/(\d+)", rest)) and method == "GET":
            pull = self.pulls.get(int(m.group(1)))
            return (200, pull, {}) if pull else (404, {"message": "Not Found"}, {})
        if rest == "/pulls" and method == "POST":
            number = 100 + len(self.created_pulls)
            pull = {**body, "number": number, "html_url": f"https://github.com/{self.repository}/pull/{number}"}
            self.created_pulls.append(pull)
            return 201, pull, {}
        return 404, {"message": f"no route for {method} {path}"}, {}

    def _page(self, path: str, items: list[Any], query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        size = int(query.get("per_page", [self.default_page_size])[0])
        size = min(size, self.default_page_size)  # like GitHub's cap, but small so tests reach page 2
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * size : page * size]
        headers = {}
        links = []
        if page * size < len(items):
            links.append(f'<{self.url}{path}?per_page={size}&page={page + 1}>; rel="next"')
        last = max(1, -(-len(items) // size))
        links.append(f'<{self.url}{path}?per_page={size}&page={last}>; rel="last"')
        headers["Link"] = ", ".join(links)
        return 200, chunk, headers


#: Real webhook payloads, vendored with their licence (see README.md there).
WEBHOOKS = Path(__file__).resolve().parent / "fixtures" / "github-webhooks"


def webhook_payload(kind: str, name: str) -> dict[str, Any]:
    """A real webhook payload from tests/fixtures/github-webhooks/<kind>/<name>.json (a fresh copy).

    The payloads live in the repository, so a plain clone tests itself. A missing one is a broken
    checkout: it raises (the test fails), it never skips.
    """
    path = WEBHOOKS / kind / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: vendored webhook payload {kind}/{name}.json is missing (broken checkout?)")
    return json.loads(path.read_text(encoding="utf-8"))
