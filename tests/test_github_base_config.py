"""The Action's inputs only tighten the base branch's settings; review mode leaves nothing behind (issue 11, 4 and 11).

A pull request can edit the workflow file that passes `model` and `max-cost`: those inputs may lower the base's
dollar cap and pick a model the base config already names, nothing else — a scripted model is no exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git
from github_server import GitHubServer
from messages_server import MessagesServer
from test_github_action import REPO, TOKEN, FakeReviewer, make_env, pr_event, pr_repo, sticky_comments
from test_github_engine import _commit_config, _open_pr, _outputs, _pr_event, _squad_github, _sticky, gh_repo

from squad.errors import UsageError
from squad.github.action import run_action
from squad.github.env import ActionEnv

__all__ = ["gh_repo", "pr_repo"]  # fixtures, imported for the tests here
pytestmark = pytest.mark.timeout(120)


def _approve_all(path: Path) -> str:
    """What a PR would plant: a scripted model whose every reviewer approves."""
    verdict = {"name": "submit_verdict", "input": {"verdict": "approve", "summary": "LGTM", "findings": []}}
    scripts = [{"agent": a, "turns": [{"tool_calls": [verdict]}]} for a in ("critic", "security")]
    path.write_text(yaml.safe_dump({"version": 1, "scripts": scripts}))
    return f"scripted:{path}"


def test_a_forged_scripted_model_input_is_refused(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    """`model: scripted:approve-all.yaml` in a PR's workflow: refused before any model call, said in the comment,
    exit 2 — not an approval."""
    root = gh_repo["root"]
    _commit_config(root, ["critic"], '[models]\nreviewer = "claude-sonnet-4-5"\n')
    _open_pr(gh_repo)
    forged = _approve_all(root / "approve-all.yaml")  # in the PR's checkout
    with MessagesServer() as llm, GitHubServer() as gh:
        out = _squad_github(
            tmp_path,
            gh,
            root,
            "pull_request",
            _pr_event("opened", gh_repo),
            SQUAD_MODEL=forged,
            ANTHROPIC_BASE_URL=llm.url,
            ANTHROPIC_API_KEY="sk-ant-test",
        )
        [comment] = _sticky(gh)
        assert llm.requests == []
    assert out.returncode == 2, out.stdout + out.stderr
    body = comment["body"]
    assert "squad review: error" in body and "is not one the base branch" in body and "approve" not in body.split()
    assert _outputs(tmp_path)["verdict"] == "error"


def test_a_model_input_the_base_names_is_used_and_no_review_dir_is_left(
    tmp_path: Path, gh_repo: dict[str, Any]
) -> None:
    """An input naming a model of the base config is honoured; the review's temp dir is removed afterwards."""
    root = gh_repo["root"]
    model = _approve_all(tmp_path / "approve.yaml")
    _commit_config(root, ["critic", "security"], f'[models]\nfallback = ["{model}"]\n')
    _open_pr(gh_repo)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with GitHubServer() as gh:
        out = _squad_github(
            tmp_path, gh, root, "pull_request", _pr_event("opened", gh_repo), SQUAD_MODEL=model, TMPDIR=str(tmp)
        )
        [comment] = _sticky(gh)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "squad review: approve" in comment["body"] and "**critic** (approve): LGTM" in comment["body"]
    assert list(tmp.iterdir()) == []  # no squad-review-* (nor any other) temp dir left behind


def _env(tmp_path: Path, gh: GitHubServer, info: dict[str, Any], **inputs: str) -> ActionEnv:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(pr_event("opened", info)))
    return ActionEnv.from_env(
        {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(path),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": gh.url,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_WORKSPACE": str(info["root"]),
            **inputs,
        }
    )


def test_max_cost_input_only_lowers_the_base_cap(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    root = pr_repo["root"]
    (root / ".squad" / "squad.toml").write_text("[budgets]\nrun_usd = 1.0\n")
    git(root, "commit", "-q", "-am", "a one-dollar cap")
    pr_repo["base"] = git(root, "rev-parse", "HEAD").strip()
    caps = {}
    with GitHubServer() as gh:
        for raw in ("5", "0.25"):
            reviewer = FakeReviewer()
            run_action(_env(tmp_path, gh, pr_repo, SQUAD_MAX_COST=raw), make_reviewer=reviewer.factory)
            caps[raw] = reviewer.configs[0][0].limits.run_usd
        for bad in ("0", "-1", "nan", "lots"):
            with pytest.raises(UsageError, match="max-cost must be"):
                _env(tmp_path, gh, pr_repo, SQUAD_MAX_COST=bad)
    assert caps == {"5": 1.0, "0.25": 0.25}  # a PR raising the cap to $5 gets the base's $1


def test_person_decisions_show_the_person(tmp_path: Path, pr_repo: dict[str, Any]) -> None:
    """A person's entry (agent null, in `<date>-<person>.md`) is shown as theirs, not "by unknown"."""
    root = pr_repo["root"]
    git(root, "checkout", "-q", "changes")
    ledger = root / "decisions" / "2026" / "11" / "2026-11-22-alice.md"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(
        "# Decisions — alice, 2026-11-22\n\n## Keep SQLite\n"
        '<!-- squad-decision {"id":"01JD0000000000000000000007","date":"2026-11-22T06:31:07Z","agent":null,'
        '"run":null,"supersedes":[],"tags":[]} -->\n\n**Decision.** SQLite stays.\n'
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a person's decision")
    pr_repo["head"] = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "main")
    reviewer = FakeReviewer()
    with GitHubServer() as gh:
        run_action(
            make_env(tmp_path, gh, root, "pull_request", pr_event("opened", pr_repo)), make_reviewer=reviewer.factory
        )
        [comment] = sticky_comments(gh)
    assert "**Keep SQLite** — `01JD0000000000000000000007` by alice (" in comment["body"]
    assert "unknown" not in comment["body"]
    assert "01JD0000000000000000000007: Keep SQLite (by alice," in reviewer.inputs[0].pr_metadata
