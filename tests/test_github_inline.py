"""Inline review comments: the cap, suggestions, what GitHub refuses, resolving gone threads, squad's own PR.

In process (`run_action`) with real git and the loopback GitHub server; the reviewer is injected. The end-to-end
case (a scripted reviewer team, opened then synchronize) is in tests/test_github_engine.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import git
from github_server import GitHubServer
from test_github_action import BASE_TOML, FakeReviewer, make_env, pr_event, pr_repo, sticky_comments

from squad.domain.review import Finding
from squad.github.action import run_action
from squad.github.review import ReviewOutcome

__all__ = ["pr_repo"]


def _settings(info: dict[str, Any], extra: str) -> None:
    root = info["root"]
    (root / ".squad" / "squad.toml").write_text(BASE_TOML + extra)
    git(root, "commit", "-q", "-am", "settings")
    info["base"] = git(root, "rev-parse", "HEAD").strip()


def _review(tmp_path: Path, gh: GitHubServer, info: dict[str, Any], findings: list[Finding], **kw: Any) -> Any:
    outcome = ReviewOutcome(findings=findings, reviewers=["critic"], **kw)
    env = make_env(tmp_path, gh, info["root"], "pull_request", pr_event("synchronize", info))
    return run_action(env, make_reviewer=FakeReviewer(outcome).factory)


def _f(line: int | None, message: str, severity: str = "minor", **kw: Any) -> Finding:
    return Finding(reviewer="critic", file="app.py", line=line, severity=severity, message=message, **kw)  # type: ignore[arg-type]


def test_at_most_max_inline_comments_the_rest_in_the_table(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    _settings(pr_repo, "max_inline_comments = 2\n")
    findings = [_f(1, f"issue {i}") for i in range(5)]
    with GitHubServer() as gh:
        _review(tmp_path, gh, pr_repo, findings)
        [comment] = sticky_comments(gh)
        posted = gh.review_comments[2]
    assert len(gh.reviews[2]) == 1 and len(posted) == 2
    body = comment["body"]
    assert "2 new findings (2 minor) are inline comments" in body
    assert sum(f"| `app.py:1` | issue {i} |" in body for i in range(5)) == 3


def test_suggestions_become_suggestion_blocks_unless_they_hide_characters(
    tmp_path: Path, pr_repo: dict[str, Any]
) -> None:
    findings = [
        _f(2, "return a constant", suggestion="    return 'OK'  # ```` fence inside"),
        _f(1, "rename", suggestion="def health_check():\u202e"),
    ]
    with GitHubServer() as gh:
        _review(tmp_path, gh, pr_repo, findings)
        bodies = {c["line"]: c["body"] for c in gh.review_comments[2]}
    assert "`````suggestion\n    return 'OK'  # ```` fence inside\n`````" in bodies[2]  # the fence outgrows the code
    assert "suggestion" not in bodies[1] and "rename" in bodies[1]  # a bidi control is never offered to commit


def test_an_inline_review_github_refuses_goes_back_to_the_table(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    with GitHubServer() as gh:
        gh.diff_lines[2] = {"app.py": {2}}  # GitHub disagrees about line 1
        _review(tmp_path, gh, pr_repo, [_f(1, "off the diff"), _f(2, "on the diff")])
        [comment] = sticky_comments(gh)
        assert not gh.review_comments.get(2)
    body = comment["body"]
    assert "GitHub refused the inline review" in body
    assert "| `app.py:1` | off the diff |" in body and "| `app.py:2` | on the diff |" in body


def test_gone_findings_are_resolved_or_answered_and_an_incomplete_review_resolves_nothing(
    tmp_path: Path, pr_repo: dict[str, Any]
) -> None:
    with GitHubServer() as gh:
        _review(tmp_path, gh, pr_repo, [_f(1, "first"), _f(2, "second"), _f(2, "third")])
        first, second, third = gh.review_comments[2]
        # a reviewer failed: "first" is missing but may just be unreviewed -> nothing resolved
        _review(tmp_path, gh, pr_repo, [_f(2, "second"), _f(2, "third")], errors=["reviewer x failed"])
        assert not any(t["isResolved"] for t in gh.threads[2])
        # complete: "first" is gone -> resolved; resolving "second" is refused -> answered instead
        gh.fail("POST", r"^/graphql$", 403, match=rf"resolveReviewThread.*PRRT_{second['id']}\b")
        _review(tmp_path, gh, pr_repo, [_f(2, "third")])
        resolved = {t["comment"] for t in gh.threads[2] if t["isResolved"]}
        replies = [c for c in gh.review_comments[2] if c["in_reply_to_id"]]
        [comment] = sticky_comments(gh)
    assert len(gh.reviews[2]) == 1  # nothing was posted twice
    gone = {first["id"], second["id"]}
    assert resolved | {r["in_reply_to_id"] for r in replies} == gone and third["id"] not in resolved
    assert all("looks fixed" in r["body"] for r in replies)
    assert "2 inline threads of findings that are gone were resolved" in comment["body"]


def test_request_changes_never_on_squads_own_pr_and_dismissed_when_fixed(
    tmp_path: Path, pr_repo: dict[str, Any]
) -> None:
    _settings(pr_repo, 'request_changes_on = ["blocking"]\n')
    with GitHubServer() as gh:
        gh.pulls[2] = {"number": 2, "user": {"login": "someone", "id": 7}}
        _review(tmp_path, gh, pr_repo, [_f(2, "broken", "blocking")])
        assert gh.reviews[2][-1]["state"] == "CHANGES_REQUESTED"
        _review(tmp_path, gh, pr_repo, [])  # fixed: squad's request for changes is dismissed
        assert gh.reviews[2][-1]["state"] == "DISMISSED"
        # squad's own PR: GitHub refuses REQUEST_CHANGES from the PR's author, so squad comments
        event = pr_event("synchronize", pr_repo)
        event["pull_request"]["user"] = dict(gh.me)
        outcome = ReviewOutcome(findings=[_f(1, "also broken", "blocking")], reviewers=["critic"])
        run_action(
            make_env(tmp_path, gh, pr_repo["root"], "pull_request", event), make_reviewer=FakeReviewer(outcome).factory
        )
        assert gh.reviews[2][-1]["state"] == "COMMENTED"
