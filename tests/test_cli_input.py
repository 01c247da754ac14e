"""Bad input never gets a traceback: every command of `squad --help` (and every `decisions` subcommand), run
as a real child process with bad values, says what is wrong and exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

from squad.cli import COMMANDS

pytestmark = pytest.mark.timeout(300)

RUN = "20261122-063107-a1b2"  # a well-formed run id no run has


def _squad(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squad", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _team(repo: Path) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "backend.md").write_text("---\nname: backend\nrole: backend\ntools: [read, write]\n---\nB.\n")
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\nR.\n")
    (repo / ".squad" / "squad.toml").write_text('[models]\ndefault = "claude-sonnet-5-5"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "team")


#: (where: repo | bare | broken | outside, argv). Every one must exit 2 without a traceback.
CASES: list[tuple[str, list[str]]] = [
    # the group itself
    ("repo", ["nosuchcommand"]),
    ("repo", ["--bogus"]),
    # init
    ("repo", ["init", "--force", "nope.md"]),
    ("repo", ["init", "extra"]),
    ("outside", ["init"]),
    # team, doctor
    ("broken", ["team"]),
    ("outside", ["team"]),
    ("repo", ["team", "--bogus"]),
    ("repo", ["doctor", "--bogus"]),
    ("repo", ["doctor", "extra"]),
    # decisions
    ("repo", ["decisions"]),
    ("repo", ["decisions", "nosuch"]),
    ("repo", ["decisions", "add"]),
    ("repo", ["decisions", "add", "--title", "", "--decision", ""]),
    ("repo", ["decisions", "add", "--title", "t", "--decision", "d", "--supersedes", "NOPE"]),
    ("repo", ["decisions", "add", "--title", "t", "--decision", "d", "--run", "../x"]),
    ("repo", ["decisions", "list", "--status", "bogus"]),
    ("outside", ["decisions", "list"]),
    ("repo", ["decisions", "show"]),
    ("repo", ["decisions", "show", ""]),
    ("repo", ["decisions", "show", "NOPE"]),
    ("repo", ["decisions", "search"]),
    ("repo", ["decisions", "search", "("]),
    ("repo", ["decisions", "check", "--base", "no-such-ref"]),
    # plan
    ("repo", ["plan"]),
    ("repo", ["plan", ""]),
    ("repo", ["plan", "x", "--model", "nonsense"]),
    ("repo", ["plan", "x", "--model", "replay:nope"]),
    ("repo", ["plan", "x", "--model", "scripted:/no/such/script.yaml"]),
    ("bare", ["plan", "x"]),
    ("broken", ["plan", "x"]),
    # plan --out: a run spread over CI jobs (checked before anything is written)
    ("repo", ["plan", "x", "--matrix"]),
    ("repo", ["plan", "x", "--out", "plan", "--json"]),
    ("repo", ["plan", "x", "--out", "README.md"]),
    ("repo", ["plan", "x", "--out", "plan", "--max-waves", "0"]),
    ("repo", ["plan", "", "--out", "plan"]),
    ("repo", ["plan", "x", "--out", "plan", "--agent", "reviewer"]),
    ("repo", ["plan", "x", "--out", "plan", "--max-cost", "0"]),
    # task, integrate
    ("repo", ["task"]),
    ("repo", ["task", RUN, "api"]),
    ("repo", ["task", RUN, "api", "--from", "/no/such/dir", "--out", "out"]),
    ("repo", ["task", RUN, "api", "--from", ".", "--out", "out"]),
    ("repo", ["task", "../..", "api", "--from", ".", "--out", "out"]),
    ("repo", ["task", RUN, "../x", "--from", ".", "--out", "out"]),
    ("repo", ["integrate"]),
    ("repo", ["integrate", RUN]),
    ("repo", ["integrate", RUN, "--no-push"]),
    ("repo", ["integrate", "../..", "--no-push"]),
    ("repo", ["integrate", RUN, "--from", "/no/such/dir", "--no-push"]),
    ("repo", ["integrate", RUN, "--pr"]),
    ("repo", ["integrate", RUN, "--pr", "--no-push"]),
    ("repo", ["integrate", RUN, "--base", "main"]),
    ("repo", ["integrate", RUN, "--pr", "--base", ""]),
    # run
    ("repo", ["run"]),
    ("repo", ["run", ""]),
    ("repo", ["run", "   "]),
    ("repo", ["run", "x", "--max-cost", "0"]),
    ("repo", ["run", "x", "--max-cost", "-1"]),
    ("repo", ["run", "x", "--max-cost", "abc"]),
    ("repo", ["run", "x", "--max-cost", "nan"]),
    ("repo", ["run", "x", "--max-cost", "inf"]),
    ("repo", ["run", "x", "--max-cost"]),
    ("repo", ["run", "--resume", RUN]),
    ("repo", ["run", "--resume", "../.."]),
    ("repo", ["run", "x", "--resume", RUN]),
    ("repo", ["run", "x", "--agent", "nobody"]),
    ("repo", ["run", "x", "--agent", "reviewer"]),
    ("repo", ["run", "x", "--model", "nonsense"]),
    ("repo", ["run", "--model", "replay:nope"]),
    ("bare", ["run", "x"]),
    ("broken", ["run", "x"]),
    ("repo", ["run", "x", "--retry", "api"]),
    ("repo", ["run", "x", "--note", "why"]),
    ("repo", ["run", "--resume", RUN, "--retry", "nosuch"]),
    # people
    ("repo", ["approve"]),
    ("repo", ["approve", RUN]),
    ("repo", ["approve", RUN, "api"]),
    ("repo", ["approve", "../..", "api"]),
    ("repo", ["reject", RUN, "api"]),
    ("repo", ["reject", RUN, "api", "--note", "x"]),
    # the journal
    ("repo", ["runs", "extra"]),
    ("outside", ["runs"]),
    ("repo", ["log"]),
    ("repo", ["log", RUN]),
    ("repo", ["log", "../../.git"]),
    ("repo", ["log", "--task"]),
    ("repo", ["cost", RUN]),
    ("repo", ["cost", "../x"]),
    ("outside", ["log", "--from", "."]),  # --from needs the run
    ("outside", ["log", RUN, "--from", "/proc/no/such/dir"]),
    ("outside", ["cost", RUN, "--from", "."]),  # no fragment here
    ("outside", ["cost", "../x", "--from", "."]),
    ("outside", ["log", RUN, "extra"]),  # a folder without --from
    ("repo", ["report", RUN]),
    ("repo", ["report", "--out", "/"]),
    # gc, demo, github
    ("repo", ["gc"]),
    ("repo", ["gc", "--run", "../.."]),
    ("repo", ["gc", "--run", "Not_A_Run"]),
    ("repo", ["demo", "--keep", "/proc/no/such/dir"]),
    ("repo", ["demo", "--keep", "README.md"]),
    ("repo", ["github"]),
    ("repo", ["github", "extra"]),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Where the cases run: a repository with a team, one with no commit, one with a malformed charter, and a
    folder outside any repository. Built once: a refused command changes none of them (checked per case)."""
    tmp = tmp_path_factory.mktemp("places")
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    _team(repo)
    bare = tmp / "bare"  # a repository with no commit
    bare.mkdir()
    git(bare, "init", "-q")
    broken = tmp / "broken"  # a malformed charter
    broken.mkdir()
    git(broken, "init", "-q")
    (broken / ".squad" / "agents").mkdir(parents=True)
    (broken / ".squad" / "agents" / "backend.md").write_text("---\nname: [unclosed\n---\n")
    (broken / "f").write_text("x")
    git(broken, "add", "-A")
    git(broken, "commit", "-qm", "broken")
    for name in ("backend.md", "reviewer.md"):
        (bare / ".squad" / "agents").mkdir(parents=True, exist_ok=True)
        (bare / ".squad" / "agents" / name).write_text((repo / ".squad" / "agents" / name).read_text())
    outside = tmp / "outside"
    outside.mkdir()
    return {"repo": repo, "bare": bare, "broken": broken, "outside": outside}


def test_every_command_and_decisions_subcommand_has_a_bad_input_case() -> None:
    covered = {args[0] for _, args in CASES if not args[0].startswith("-")}
    assert set(COMMANDS) <= covered, f"no bad-input case for {set(COMMANDS) - covered}"
    subcommands = json.loads(
        subprocess.run(
            [sys.executable, "-c", "import json; from squad.cli.decisions import decisions; "
             "print(json.dumps(sorted(decisions.commands)))"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert set(subcommands) <= {args[1] for _, args in CASES if args[0] == "decisions" and len(args) > 1}


@pytest.mark.parametrize(("place", "args"), CASES, ids=[f"{p}:{' '.join(a)}" for p, a in CASES])
def test_bad_input_exits_2_with_a_message_and_no_traceback(
    places: dict[str, Path], place: str, args: list[str]
) -> None:
    out = _squad(places[place], *args)
    text = out.stdout + out.stderr
    assert out.returncode == 2, f"squad {' '.join(args)} ({place}): exit {out.returncode}\n{text[-800:]}"
    assert "Traceback" not in text and out.stderr.strip(), text[-800:]
    assert not list((places["repo"] / ".squad").glob("runs/*")), "a refused command left a run behind"


def test_every_model_option_has_one_help_naming_every_model_the_registry_accepts() -> None:
    import re

    import click

    from squad.cli import cli
    from squad.cli.options import MODEL_HELP
    from squad.cli.run import plan as plan_without_out
    from squad.config import Settings
    from squad.errors import ConfigError
    from squad.models.registry import ModelRuntime, backend

    with click.Context(cli) as ctx:
        commands = {name: cli.get_command(ctx, name) for name in COMMANDS}
    commands["plan (without --out)"] = plan_without_out
    helps = {
        name: p.help
        for name, command in commands.items()
        for p in getattr(command, "params", [])
        if p.name == "model" and isinstance(p, click.Option)
    }
    assert {"run", "plan", "task", "integrate", "plan (without --out)"} <= set(helps)
    assert set(helps.values()) == {MODEL_HELP}
    with pytest.raises(ConfigError) as unknown:  # the registry's own list of the names it takes
        backend("nonsense", settings=Settings(), runtime=ModelRuntime.from_settings(Settings()))
    accepted = re.findall(r"`([a-z]+[:-])", str(unknown.value))
    assert sorted(accepted) == ["bedrock:", "claude-", "replay:", "scripted:", "vertex:"]
    assert all(form in MODEL_HELP for form in accepted)
