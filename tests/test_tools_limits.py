"""Limits (issue 10, item 6): bytes written per call and per task, file size of commands, secrets scrubbed
by pattern, the workflow's GITHUB_* files kept from agent commands, and protected paths compared the way
case-insensitive, normalising file systems (macOS, Windows) compare names. Through Toolbox.call."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from tools_support import call, make_ctx

from squad.config import Settings

PY = shlex.quote(sys.executable)


def test_bytes_written_are_capped_per_call_and_per_task(repo: Path) -> None:
    limits = {"tools": {"max_write_bytes": 1000, "max_task_write_bytes": 2500}}
    ctx = make_ctx(repo, settings=Settings.model_validate(limits))
    big = call(ctx, "write_file", {"path": "big.txt", "content": "x" * 1001})
    assert big.is_error and "max_write_bytes" in big.content and not (repo / "big.txt").exists()
    for name in ("a.txt", "b.txt"):
        assert not call(ctx, "write_file", {"path": name, "content": "y" * 1000}).is_error
    (repo / "c.txt").write_text("start\n" + "z" * 400 + "\n")
    over = call(ctx, "edit_file", {"path": "c.txt", "old": "start", "new": "w" * 200})
    assert over.is_error and "max_task_write_bytes" in over.content and "2,000 bytes" in over.content
    assert (repo / "c.txt").read_text() == "start\n" + "z" * 400 + "\n"  # a refused write changes nothing
    assert not call(ctx, "edit_file", {"path": "c.txt", "old": "start\n", "new": ""}).is_error  # 401 bytes fit


def test_a_command_cannot_write_a_file_larger_than_max_file_bytes(repo: Path) -> None:
    code = "open('big.bin', 'wb').write(bytes(3_000_000))"
    settings = Settings.model_validate({"commands": {"allowed": [f"{PY} -c"], "max_file_bytes": 1_000_000}})
    result = call(make_ctx(repo, settings=settings), "run", {"command": [sys.executable, "-c", code]})
    assert "exit code 0" not in result.content, result.content
    assert (repo / "big.bin").stat().st_size <= 1_000_000


SECRETS = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
    "SENTRY_DSN": "https://abc123@o1.ingest.sentry.io/42",
    "APP_JWT": "opaque",
    "JWT_SIGNING_MATERIAL": "opaque",
    "DEPLOY_TOKEN": "opaque",
    "CLIENT_SECRET_VALUE": "opaque",
    "STRIPE_KEY": "opaque",
    "DB_PASS": "opaque",
    "REPO_URL": "https://x-access-token:ghs_0123456789abcdefghij0123@github.com/o/r.git",
    "MIRROR": "https://ghp_0123456789abcdefghij0123456789abcd@github.com/o/r",
    "CALLBACK": "https://api.example.com/hook?access_token=abcdef123456",
    "SOMETHING": "sk-ant-api03-0123456789abcdefghijklmnop",
    "AWS_LIKE": "AKIAABCDEFGHIJKLMNOP",
    "BEARER_VALUE": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJl",
    "GITHUB_ENV": "/home/runner/work/_temp/_runner_file_commands/set_env_1",
    "GITHUB_PATH": "/home/runner/work/_temp/_runner_file_commands/add_path_1",
    "GITHUB_OUTPUT": "/home/runner/work/_temp/_runner_file_commands/set_output_1",
    "GITHUB_STEP_SUMMARY": "/home/runner/work/_temp/_runner_file_commands/step_summary_1",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://pipelines.actions.example/idtoken",
}
KEPT = {"GITHUB_SHA": "0123abc", "HOME_PAGE": "https://example.com/docs?page=2", "LANG": "C.UTF-8"}


def test_secrets_are_scrubbed_by_pattern_and_workflow_files_are_not_passed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SECRETS, **KEPT}.items():
        monkeypatch.setenv(name, value)
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    settings = Settings.model_validate({"commands": {"allowed": [f"{PY} -c"]}})
    result = call(make_ctx(repo, settings=settings), "run", {"command": [sys.executable, "-c", code]})
    seen = json.loads(result.content.splitlines()[-1])
    leaked = sorted(name for name in SECRETS if name in seen)
    assert leaked == [], leaked
    assert {name: seen.get(name) for name in KEPT} == KEPT


@pytest.mark.parametrize(
    "path",
    [
        ".SQUAD/squad.toml",
        ".Squad/agents/backend.md",
        ".\u017fquad/squad.toml",  # LATIN SMALL LETTER LONG S casefolds to 's'
        ".squ\u200cad/squad.toml",  # HFS+ ignores ZERO WIDTH NON-JOINER
        ".squad./squad.toml",  # Windows drops trailing dots
        "SQUAD~1/squad.toml",  # a Windows 8.3 short name
        "DECISIONS/2026/11/2026-11-22-run.md",
        "decisions/2026/x.md",
        ".GIT/config",
        ".git\u200d/hooks/pre-commit",
        ".git::$INDEX_ALLOCATION/config",
        "sub/.Git/config",
    ],
)
def test_protected_paths_are_compared_case_insensitively_and_normalised(repo: Path, path: str) -> None:
    ctx = make_ctx(repo)
    for name, args in (
        ("write_file", {"path": path, "content": "[commands]\nallowed = ['sh']\n"}),
        ("edit_file", {"path": path, "old": "a", "new": "b"}),
    ):
        result = call(ctx, name, args)
        assert result.is_error and ("refus" in result.content or "off limits" in result.content), result.content
    assert sorted(p.name for p in repo.iterdir()) == [".git", "README.md"]


def test_the_same_names_compare_equal_in_nfc_and_nfd() -> None:
    from squad.agents.tools.jail import fold, protected

    assert fold("caf\u00e9") == fold("cafe\u0301") == fold("CAF\u00c9")
    assert protected("decisions/README.md") is None and protected("Decisions/readme.MD") is None
    assert protected("decisions") is None and protected("docs/decisions/x.md") is None
    assert protected(".squad") == "squad" and protected("a/.GIT") == "git" and protected("DECISIONS/x.md") == "ledger"
