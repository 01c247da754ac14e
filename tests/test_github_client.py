"""GitHubClient against the loopback server: retries, rate limits, pagination, where the token goes."""

from __future__ import annotations

import time

import pytest
from github_server import GitHubServer

from squad.github.client import GitHubAPIError, GitHubClient

REPO = "Codertocat/Hello-World"


def client(gh: GitHubServer, waits: list[float], **kw: float) -> GitHubClient:
    return GitHubClient(gh.url, "tok-secret", REPO, sleep=waits.append, **kw)  # type: ignore[arg-type]


def test_retries_a_500_once() -> None:
    waits: list[float] = []
    with GitHubServer() as gh, client(gh, waits) as c:
        gh.fail("POST", r"/comments$", 500)
        c.create_issue_comment(1, "hi")
        assert len(gh.requests("POST", r"/comments$")) == 2 and len(gh.comments[1]) == 1
    assert len(waits) == 1


def test_429_and_secondary_rate_limit_wait_as_told() -> None:
    waits: list[float] = []
    with GitHubServer() as gh, client(gh, waits) as c:
        gh.fail("GET", r"/permission$", 429, retry_after="7")
        gh.fail("GET", r"/permission$", 403, x_ratelimit_remaining="0", x_ratelimit_reset=str(int(time.time()) + 3))
        gh.permissions["a"] = "write"
        assert c.permission("a")["permission"] == "write"
    assert waits[0] == 7.0 and 1.0 <= waits[1] <= 3.0


def test_waits_are_capped_and_attempts_bounded() -> None:
    waits: list[float] = []
    with GitHubServer() as gh, client(gh, waits, max_attempts=3, max_wait_s=5) as c:
        gh.fail("GET", r"/pulls/1$", 403, times=10, retry_after="3600")
        with pytest.raises(GitHubAPIError, match="after 3 attempts"):
            c.get_pull(1)
        assert len(gh.requests("GET", r"/pulls/1$")) == 3
    assert waits == [5, 5]


def test_plain_403_and_404_are_not_retried() -> None:
    waits: list[float] = []
    with GitHubServer() as gh, client(gh, waits) as c:
        gh.fail("GET", r"/pulls/1$", 403)
        with pytest.raises(GitHubAPIError) as err:
            c.get_pull(1)
        assert err.value.status == 403 and "permissions" in (err.value.hint or "")
        with pytest.raises(GitHubAPIError, match="404"):
            c.get_pull(9)
    assert waits == []


def test_pagination_follows_link_headers() -> None:
    with GitHubServer() as gh, client(gh, []) as c:
        for i in range(65):
            gh.add_comment(3, f"c{i}")
        bodies = [x["body"] for x in c.list_issue_comments(3)]
        assert bodies == [f"c{i}" for i in range(65)]
        assert len(gh.requests("GET", r"/issues/3/comments$")) == 3


def test_token_only_in_authorization_header_and_not_to_other_origins() -> None:
    with GitHubServer() as gh, client(gh, []) as c:
        c.create_issue_comment(1, "x")
        [call] = gh.calls
        assert call.headers["authorization"] == "Bearer tok-secret"
        assert "tok-secret" not in repr(c)
        with pytest.raises(GitHubAPIError, match="another origin"):
            c.request("GET", "http://127.0.0.2:1/steal")
        assert len(gh.calls) == 1
