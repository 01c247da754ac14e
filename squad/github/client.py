"""A small GitHub REST client: just the calls the Action makes, with bounded retries and pagination.

Built on httpx2 (the HTTP client the anthropic SDK already brings). Retries 5xx, 429 and GitHub's
secondary rate limits (403 with `retry-after`, or `x-ratelimit-remaining: 0` -> wait until
`x-ratelimit-reset`), each wait capped. The token lives only in the Authorization header of this
client; it is never logged, and it is not sent to any other origin (pagination links are checked).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2

from squad import __version__
from squad.errors import SquadError

RETRY_STATUSES = frozenset({500, 502, 503, 504, 429})


class GitHubAPIError(SquadError):
    """A GitHub API call failed (after retries, where a retry could help)."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class GitHubClient:
    """GitHub REST calls for one repository (`owner/name`).

    Args:
        api_url: `GITHUB_API_URL` (https://api.github.com, a GHES URL, or a loopback test server).
        token: the job's token; sent only as `Authorization: Bearer ...` to `api_url`'s origin.
        repository: `owner/name`.
        max_attempts: tries per call for retryable failures.
        max_wait_s: cap on any single wait (retry-after, rate-limit reset, backoff).
        sleep: injectable for tests.
        graphql_url: `GITHUB_GRAPHQL_URL`; by default derived from `api_url` (…/api/v3 -> …/api/graphql,
            else <api_url>/graphql). It must have `api_url`'s origin: the token goes nowhere else.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        repository: str,
        *,
        max_attempts: int = 5,
        max_wait_s: float = 60.0,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        graphql_url: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.graphql_url = (graphql_url or "").rstrip("/") or (
            self.api_url[: -len("/v3")] + "/graphql" if self.api_url.endswith("/api/v3") else self.api_url + "/graphql"
        )
        self.repository = repository
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._origin = _origin(self.api_url)
        self._http = httpx2.Client(
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"squad/{__version__}",
            },
            timeout=timeout_s,
            trust_env=False,  # no proxy/netrc surprises: the token goes exactly where api_url says
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show the token
        return f"GitHubClient({self.api_url!r}, repository={self.repository!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- low level ------------------------------------------------------------------------------------

    def request(self, method: str, path_or_url: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One call with retries; returns the decoded JSON body (None for 204)."""
        response = self._send(method, path_or_url, json=json, params=params)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            if _origin(path_or_url) != self._origin:
                raise GitHubAPIError(f"refusing to send the token to another origin: {_origin(path_or_url)}")
            return path_or_url
        return self.api_url + "/" + path_or_url.lstrip("/")

    def _send(
        self, method: str, path_or_url: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx2.Response:
        url = self._url(path_or_url)
        what = f"{method} {urlsplit(url).path}"
        last: str = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._http.request(method, url, json=json, params=params)
            except httpx2.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if attempt == self.max_attempts:
                    break
                self._sleep(self._backoff(attempt))
                continue
            if response.status_code < 400:
                return response  # 3xx too: the caller decides where a redirect may go (never with the token)
            wait = self._retry_wait(response, attempt)
            last = f"HTTP {response.status_code}: {_message(response)}"
            if wait is None or attempt == self.max_attempts:
                if wait is None:
                    raise GitHubAPIError(
                        f"GitHub API {what} failed: {last}",
                        status=response.status_code,
                        hint=_hint(response.status_code),
                    )
                break
            self._sleep(wait)
        raise GitHubAPIError(
            f"GitHub API {what} failed after {self.max_attempts} attempts: {last}",
            hint="GitHub may be degraded or rate-limiting this token; re-run the job later",
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.max_wait_s, 0.5 * 2 ** (attempt - 1))

    def _retry_wait(self, response: httpx2.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `response`, or None when it is not retryable."""
        status = response.status_code
        headers = response.headers
        retry_after = headers.get("retry-after")
        rate_limited = headers.get("x-ratelimit-remaining") == "0"
        if status not in RETRY_STATUSES and not (status == 403 and (retry_after is not None or rate_limited)):
            return None
        if retry_after is not None:
            try:
                return min(self.max_wait_s, max(0.0, float(retry_after)))
            except ValueError:
                pass
        if rate_limited and headers.get("x-ratelimit-reset", "").isdigit():
            return min(self.max_wait_s, max(0.0, int(headers["x-ratelimit-reset"]) - time.time()))
        return self._backoff(attempt)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """One GraphQL call; returns `data`. GraphQL answers errors with HTTP 200 and an `errors` list."""
        body = self.request("POST", self.graphql_url, json={"query": query, "variables": variables or {}})
        if not isinstance(body, dict):
            raise GitHubAPIError("GitHub GraphQL answered something that is not a JSON object")
        if body.get("errors"):
            first = body["errors"][0]
            message = first.get("message", first) if isinstance(first, dict) else first
            raise GitHubAPIError(f"GitHub GraphQL call failed: {str(message)[:300]}")
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def paginate(self, path: str, *, per_page: int = 100) -> Iterator[Any]:
        """Every item of a list endpoint, following `Link: <...>; rel="next"` headers."""
        url: str | None = path
        params: dict[str, Any] | None = {"per_page": per_page}
        while url:
            response = self._send("GET", url, params=params)
            page = response.json()
            if not isinstance(page, list):
                raise GitHubAPIError(f"expected a list from GET {urlsplit(self._url(url)).path}, got {type(page)}")
            yield from page
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries its own query

    # ---- the calls the Action makes --------------------------------------------------------------------

    @property
    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    def viewer(self) -> dict[str, Any] | None:
        """Who this token is: `{"login", "id"}`, or None when GitHub will not say.

        GraphQL `viewer` answers for user tokens AND installation tokens (the job's GITHUB_TOKEN is one: it
        is `github-actions[bot]`); REST `GET /user` answers only for user tokens (403 "Resource not
        accessible by integration" for installation tokens), so it is the fallback.
        """
        try:
            viewer = self.graphql("query { viewer { login databaseId } }").get("viewer") or {}
            if viewer.get("login"):
                return {"login": str(viewer["login"]), "id": viewer.get("databaseId")}
        except GitHubAPIError:
            pass
        try:
            user = self.request("GET", "/user")
        except GitHubAPIError:
            return None
        if isinstance(user, dict) and user.get("login"):
            return {"login": str(user["login"]), "id": user.get("id")}
        return None

    def list_issue_comments(self, number: int) -> Iterator[dict[str, Any]]:
        return self.paginate(f"{self._repo}/issues/{number}/comments")

    def create_issue_comment(self, number: int, body: str) -> dict[str, Any]:
        return self.request("POST", f"{self._repo}/issues/{number}/comments", json={"body": body})

    def update_issue_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        return self.request("PATCH", f"{self._repo}/issues/comments/{comment_id}", json={"body": body})

    def permission(self, user: str) -> dict[str, Any]:
        return self.request("GET", f"{self._repo}/collaborators/{quote(user, safe='')}/permission")

    def get_pull(self, number: int) -> dict[str, Any]:
        return self.request("GET", f"{self._repo}/pulls/{number}")

    def create_pull(self, *, title: str, head: str, base: str, body: str, draft: bool = False) -> dict[str, Any]:
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        return self.request("POST", f"{self._repo}/pulls", json=payload)

    def update_pull(self, number: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"{self._repo}/pulls/{number}", json=fields)

    def open_pulls_from(self, branch: str) -> list[dict[str, Any]]:
        """Open pull requests whose head is `branch` of this repository."""
        owner = self.repository.split("/")[0]
        found = self.request("GET", f"{self._repo}/pulls", params={"head": f"{owner}:{branch}", "state": "open"})
        return list(found or [])

    # ---- pull request reviews -----------------------------------------------------------------------------

    def list_review_comments(self, number: int) -> Iterator[dict[str, Any]]:
        return self.paginate(f"{self._repo}/pulls/{number}/comments")

    def list_reviews(self, number: int) -> Iterator[dict[str, Any]]:
        return self.paginate(f"{self._repo}/pulls/{number}/reviews")

    def review_comments(self, number: int, review_id: int) -> Iterator[dict[str, Any]]:
        return self.paginate(f"{self._repo}/pulls/{number}/reviews/{review_id}/comments")

    def create_review(
        self, number: int, *, commit_id: str, event: str, body: str, comments: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """ONE review with its inline comments (`path`, `line`, `side`, `body` each)."""
        payload = {"commit_id": commit_id, "event": event, "body": body, "comments": comments}
        return self.request("POST", f"{self._repo}/pulls/{number}/reviews", json=payload)

    def dismiss_review(self, number: int, review_id: int, message: str) -> dict[str, Any]:
        payload = {"message": message, "event": "DISMISS"}
        return self.request("PUT", f"{self._repo}/pulls/{number}/reviews/{review_id}/dismissals", json=payload)

    def reply_to_review_comment(self, number: int, comment_id: int, body: str) -> dict[str, Any]:
        return self.request("POST", f"{self._repo}/pulls/{number}/comments/{comment_id}/replies", json={"body": body})

    def review_threads(self, number: int) -> list[dict[str, Any]]:
        """The PR's review threads (GraphQL): `id`, `isResolved`, and the database id of their first comment."""
        owner, name = self.repository.split("/")
        threads: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(50):  # 5,000 threads at most
            data = self.graphql(_THREADS_QUERY, {"owner": owner, "name": name, "number": number, "cursor": cursor})
            page = ((data.get("repository") or {}).get("pullRequest") or {}).get("reviewThreads") or {}
            for node in page.get("nodes") or []:
                first = ((node.get("comments") or {}).get("nodes") or [{}])[0]
                threads.append(
                    {"id": node["id"], "isResolved": bool(node.get("isResolved")), "comment": first.get("databaseId")}
                )
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            cursor = info.get("endCursor")
        return threads

    def resolve_thread(self, thread_id: str) -> None:
        self.graphql(
            "mutation($id: ID!) { resolveReviewThread(input: {threadId: $id}) { thread { id isResolved } } }",
            {"id": thread_id},
        )

    # ---- Actions and checks ----------------------------------------------------------------------------------

    def run_jobs(self, run_id: int) -> list[dict[str, Any]]:
        """The jobs of a workflow run (latest attempt)."""
        data = self.request("GET", f"{self._repo}/actions/runs/{run_id}/jobs", params={"per_page": 100})
        return list((data or {}).get("jobs") or [])

    def suite_check_runs(self, suite_id: int) -> list[dict[str, Any]]:
        data = self.request("GET", f"{self._repo}/check-suites/{suite_id}/check-runs", params={"per_page": 100})
        return list((data or {}).get("check_runs") or [])

    def job_log(self, job_id: int, max_bytes: int = 2_000_000) -> str:
        """The tail (at most `max_bytes`) of a job's log.

        GitHub answers 302 with a short-lived signed URL on another host; that URL is fetched WITHOUT the token.
        """
        response = self._send("GET", f"{self._repo}/actions/jobs/{job_id}/logs")
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("location", "")
            if not location.startswith(("https://", "http://127.", "http://localhost")):
                raise GitHubAPIError(f"the log of job {job_id} redirects to an unexpected URL")
            with (
                httpx2.Client(timeout=self._http.timeout, trust_env=False, follow_redirects=False) as plain,
                plain.stream("GET", location) as blob,
            ):
                if blob.status_code >= 400:
                    raise GitHubAPIError(f"the log of job {job_id} could not be downloaded: HTTP {blob.status_code}")
                data = bytearray()
                for chunk in blob.iter_bytes():
                    data += chunk
                    if len(data) > 2 * max_bytes:
                        del data[:-max_bytes]
            return bytes(data[-max_bytes:]).decode("utf-8", errors="replace")
        return response.content[-max_bytes:].decode("utf-8", errors="replace")


_THREADS_QUERY = """
query($owner: String!, $name: String!, $number: Int!, $cursor: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100, after: $cursor) {
        pageInfo { hasNextPage endCursor }
        nodes { id isResolved comments(first: 1) { nodes { databaseId } } }
      }
    }
  }
}
"""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _message(response: httpx2.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", data))[:300] if isinstance(data, dict) else str(data)[:300]


def _hint(status: int) -> str | None:
    if status == 401:
        return "the token is invalid or expired; pass github-token: ${{ secrets.GITHUB_TOKEN }}"
    if status in (403, 404):
        return "check the workflow's `permissions:` (pull-requests: write / issues: write / contents: write)"
    return None
