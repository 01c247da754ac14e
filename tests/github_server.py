"""A loopback GitHub REST server for tests: the endpoints the Action uses, with state and failure injection.

Records every call (method, path, query, headers, JSON body); holds issue comments per issue (paginated
with real `Link` headers), collaborator permissions per user, pull requests; injects failures (a 500
once, a 429 or a secondary rate limit with `retry-after`) on chosen routes. Behaves like GitHub where squad
depends on it: the token is `github-actions[bot]` (GraphQL `viewer`; REST `GET /user` is 403 for it), a
comment can be edited only by its author (403 otherwise), and a body over 65,536 characters is a 422.

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
#: GitHub's limit on an issue comment's body.
BODY_LIMIT = 65_536


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
    match: str = ""  # regex the request's JSON body must match (e.g. one GraphQL mutation for one thread)


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
        self.me: dict[str, Any] = dict(BOT)  # who the token is
        # pull request reviews (per PR): reviews, review comments (inline + replies), threads (GraphQL)
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.review_comments: dict[int, list[dict[str, Any]]] = {}
        self.threads: dict[int, list[dict[str, Any]]] = {}
        #: per PR, the head-side lines GitHub accepts inline comments on ({path: {line, ...}}); unset = any
        self.diff_lines: dict[int, dict[str, set[int]]] = {}
        # Actions: workflow run id -> jobs; check suite id -> check runs; job id -> log text
        self.run_jobs: dict[int, list[dict[str, Any]]] = {}
        self.suite_runs: dict[int, list[dict[str, Any]]] = {}
        self.job_logs: dict[int, str] = {}
        self.log_downloads: list[Call] = []
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

    def fail(self, method: str, path: str, status: int, *, times: int = 1, match: str = "", **headers: str) -> None:
        self.failures.append(
            Failure(method, path, status, {k.replace("_", "-"): v for k, v in headers.items()}, times, match=match)
        )

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
                        if (
                            failure.times > 0
                            and failure.method == method
                            and re.search(failure.path, parts.path)
                            and re.search(failure.match, raw.decode("utf-8", "replace"))
                        ):
                            failure.times -= 1
                            self._reply(failure.status, {"message": failure.message}, failure.headers)
                            return
                    if parts.path.startswith("/_blobs/"):  # a signed download URL: no token may come here
                        server.log_downloads.append(server.calls.pop())
                        text = server.job_logs.get(int(parts.path.rsplit("/", 1)[1]), "")
                        data = text.encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "text/plain")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    status, payload, headers = server._route(method, parts.path, parse_qs(parts.query), body)
                self._reply(status, payload, headers)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_PUT(self) -> None:
                self._handle("PUT")

        return Handler

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        if path == "/graphql" and method == "POST":
            return self._graphql(body)
        if path == "/user" and method == "GET":
            if self.me.get("type") == "Bot":  # an installation token (GITHUB_TOKEN) has no REST user
                return 403, {"message": "Resource not accessible by integration"}, {}
            return 200, self.me, {}
        if isinstance(body, dict) and len(str(body.get("body") or "")) > BODY_LIMIT:
            return 422, {"message": "Validation Failed", "errors": [{"field": "body", "code": "too_long"}]}, {}
        repo = "/repos/" + self.repository
        if not path.startswith(repo + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(repo) :]
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            issue = int(m.group(1))
            if method == "GET":
                return self._page(path, self.comments.get(issue, []), query)
            if method == "POST":
                return 201, self._add_comment(issue, body["body"], dict(self.me)), {}
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(1)):
                        if comment["user"].get("id") != self.me["id"]:
                            return 403, {"message": "Resource not accessible by integration"}, {}
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
            owner = self.repository.split("/")[0]
            pull = {
                **body,
                "number": number,
                "state": "open",
                "user": dict(self.me),
                "html_url": f"https://github.com/{self.repository}/pull/{number}",
                "head": {
                    "ref": body["head"],
                    "label": f"{owner}:{body['head']}",
                    "repo": {"full_name": self.repository},
                },
                "base": {"ref": body["base"], "repo": {"full_name": self.repository}},
            }
            self.created_pulls.append({**body, "number": number, "html_url": pull["html_url"]})
            self.pulls[number] = pull
            return 201, pull, {}
        if rest == "/pulls" and method == "GET":
            head = query.get("head", [""])[0]
            state = query.get("state", ["open"])[0]
            found = [p for p in self.pulls.values() if (p.get("head") or {}).get("label") == head or not head]
            return 200, [p for p in found if p.get("state", "open") == state or state == "all"], {}
        if (m := re.fullmatch(r"/pulls/(\d+)", rest)) and method == "PATCH":
            pull = self.pulls.get(int(m.group(1)))
            if pull is None:
                return 404, {"message": "Not Found"}, {}
            pull.update(body)
            return 200, pull, {}
        return (
            self._route_reviews(method, rest, query, body)
            or self._route_actions(method, rest)
            or (
                404,
                {"message": f"no route for {method} {path}"},
                {},
            )
        )

    # ---- pull request reviews ---------------------------------------------------------------------------

    def _route_reviews(self, method: str, rest: str, query: dict[str, list[str]], body: Any) -> Any:
        if (m := re.fullmatch(r"/pulls/(\d+)/reviews", rest)) and method == "POST":
            return self._create_review(int(m.group(1)), body)
        if (m := re.fullmatch(r"/pulls/(\d+)/reviews", rest)) and method == "GET":
            return self._page(f"/repos/{self.repository}{rest}", self.reviews.get(int(m.group(1)), []), query)
        if (m := re.fullmatch(r"/pulls/(\d+)/comments", rest)) and method == "GET":
            return self._page(f"/repos/{self.repository}{rest}", self.review_comments.get(int(m.group(1)), []), query)
        if (m := re.fullmatch(r"/pulls/(\d+)/reviews/(\d+)/comments", rest)) and method == "GET":
            number, review = int(m.group(1)), int(m.group(2))
            items = [c for c in self.review_comments.get(number, []) if c.get("pull_request_review_id") == review]
            return self._page(f"/repos/{self.repository}{rest}", items, query)
        if (m := re.fullmatch(r"/pulls/(\d+)/reviews/(\d+)/dismissals", rest)) and method == "PUT":
            for review in self.reviews.get(int(m.group(1)), []):
                if review["id"] == int(m.group(2)):
                    review["state"] = "DISMISSED"
                    return 200, review, {}
            return 404, {"message": "Not Found"}, {}
        if (m := re.fullmatch(r"/pulls/(\d+)/comments/(\d+)/replies", rest)) and method == "POST":
            number, parent = int(m.group(1)), int(m.group(2))
            comment = self._review_comment(number, None, {"body": body["body"]}, in_reply_to=parent)
            return 201, comment, {}
        return None

    def _create_review(self, number: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        pull = self.pulls.get(number) or {}
        if body.get("event") == "REQUEST_CHANGES" and (pull.get("user") or {}).get("id") == self.me["id"]:
            return (
                422,
                {"message": "Unprocessable Entity", "errors": ["Can not request changes on your own pull request"]},
                {},
            )
        allowed = self.diff_lines.get(number)
        for c in body.get("comments") or []:
            if c.get("side", "RIGHT") != "RIGHT" or not isinstance(c.get("line"), int):
                return 422, {"message": "Unprocessable Entity", "errors": ["side/line"]}, {}
            if allowed is not None and c["line"] not in allowed.get(c["path"], set()):
                return 422, {"message": "Unprocessable Entity", "errors": ["Line could not be resolved"]}, {}
        self._next_id += 1
        review = {
            "id": self._next_id,
            "user": dict(self.me),
            "body": body.get("body", ""),
            "state": {"REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}.get(body.get("event"), "PENDING"),
            "commit_id": body.get("commit_id"),
            "html_url": f"https://github.com/{self.repository}/pull/{number}#pullrequestreview-{self._next_id}",
        }
        self.reviews.setdefault(number, []).append(review)
        for c in body.get("comments") or []:
            self._review_comment(number, review["id"], c)
        return 200, review, {}

    def _review_comment(
        self,
        number: int,
        review_id: int | None,
        c: dict[str, Any],
        *,
        in_reply_to: int | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "pull_request_review_id": review_id,
            "user": dict(user or self.me),
            "body": c["body"],
            "path": c.get("path"),
            "line": c.get("line"),
            "side": c.get("side"),
            "in_reply_to_id": in_reply_to,
            "html_url": f"https://github.com/{self.repository}/pull/{number}#discussion_r{self._next_id}",
        }
        self.review_comments.setdefault(number, []).append(comment)
        if in_reply_to is None:
            thread = {"id": f"PRRT_{self._next_id}", "isResolved": False, "comment": comment["id"]}
            self.threads.setdefault(number, []).append(thread)
        return comment

    def add_review(
        self,
        number: int,
        user: dict[str, Any],
        state: str,
        body: str,
        comments: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """A review someone else submitted (with inline comments), as a pull_request_review event reports it."""
        with self._lock:
            self._next_id += 1
            review = {"id": self._next_id, "user": user, "state": state, "body": body}
            self.reviews.setdefault(number, []).append(review)
            for c in comments:
                self._review_comment(number, review["id"], c, user=user)
            return review

    def _graphql(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        query = str((body or {}).get("query", ""))
        variables = (body or {}).get("variables") or {}
        if re.search(r"\bviewer\s*\{", query):
            # GraphQL names bots without REST's "[bot]" suffix.
            login = str(self.me["login"]).removesuffix("[bot]")
            return 200, {"data": {"viewer": {"login": login, "databaseId": self.me["id"]}}}, {}
        if "resolveReviewThread" in query:
            for threads in self.threads.values():
                for thread in threads:
                    if thread["id"] == variables.get("id"):
                        thread["isResolved"] = True
                        return (
                            200,
                            {"data": {"resolveReviewThread": {"thread": {"id": thread["id"], "isResolved": True}}}},
                            {},
                        )
            return 200, {"errors": [{"message": "Could not resolve to a node"}]}, {}
        if "reviewThreads" in query:
            nodes = [
                {"id": t["id"], "isResolved": t["isResolved"], "comments": {"nodes": [{"databaseId": t["comment"]}]}}
                for t in self.threads.get(int(variables.get("number", 0)), [])
            ]
            page = {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": nodes}
            return 200, {"data": {"repository": {"pullRequest": {"reviewThreads": page}}}}, {}
        return 200, {"errors": [{"message": f"unsupported query: {query[:80]}"}]}, {}

    # ---- Actions: workflow runs, check suites, jobs, logs ----------------------------------------------------

    def _route_actions(self, method: str, rest: str) -> Any:
        if method != "GET":
            return None
        if m := re.fullmatch(r"/actions/runs/(\d+)/jobs", rest):
            jobs = self.run_jobs.get(int(m.group(1)), [])
            return 200, {"total_count": len(jobs), "jobs": jobs}, {}
        if m := re.fullmatch(r"/check-suites/(\d+)/check-runs", rest):
            runs = self.suite_runs.get(int(m.group(1)), [])
            return 200, {"total_count": len(runs), "check_runs": runs}, {}
        if (m := re.fullmatch(r"/actions/jobs/(\d+)/logs", rest)) and int(m.group(1)) in self.job_logs:
            # GitHub redirects to a short-lived signed URL on another host.
            return 302, None, {"Location": f"{self.url}/_blobs/logs/{m.group(1)}?sig=signed"}
        return None

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
