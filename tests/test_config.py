"""Settings and charter validation: errors name file:line and the key, with suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from squad.config import Settings, parse_charter, parse_settings
from squad.errors import ConfigError

P = Path(".squad/squad.toml")


def test_empty_settings_are_all_defaults() -> None:
    assert parse_settings("", P) == Settings()


def test_misspelt_key_names_line_and_suggests() -> None:
    text = "[models]\ndefault = 'x'\n\n[budgets]\nrun_usd = 1.0\nagnet_turns = 3\n"
    with pytest.raises(ConfigError) as err:
        parse_settings(text, P)
    assert err.value.line == 6
    assert "budgets.agnet_turns" in err.value.message
    assert "did you mean 'agent_turns'" in err.value.message
    assert err.value.render().startswith("error: .squad/squad.toml:6: ")


def test_wrong_type_names_line() -> None:
    text = "[concurrency]\n# comment\nmax_agents = 'many'\n"
    with pytest.raises(ConfigError) as err:
        parse_settings(text, P)
    assert err.value.line == 3
    assert "concurrency.max_agents" in err.value.message


def test_unknown_section_suggests() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings("[modles]\ndefault = 'x'\n", P)
    assert err.value.line == 1
    assert "did you mean 'models'" in err.value.message


def test_bad_toml_names_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings("[models]\ndefault = = 'x'\n[budgets]\n", P)
    assert err.value.line == 2
    assert "invalid TOML" in err.value.message
    with pytest.raises(ConfigError) as err:
        parse_settings("[models]\ndefault = 'x\n", P)
    assert err.value.line == 2


CHARTER = """---
name: backend
role: Backend engineer
tools: [read, write, run, team]
owns: ["src/**"]
---
# Backend
Owns the server code.
"""


def test_charter_parses() -> None:
    charter = parse_charter(CHARTER, Path("backend.md"))
    assert charter.name == "backend"
    assert charter.body.startswith("# Backend")
    assert "edit_file" in charter.tool_names()
    assert charter.tool_names() == sorted(charter.tool_names())


def test_charter_unknown_tool_names_line() -> None:
    bad = CHARTER.replace("tools: [read, write, run, team]", "tools: [read, wrte]")
    with pytest.raises(ConfigError) as err:
        parse_charter(bad, Path("backend.md"))
    assert err.value.line == 4
    assert "did you mean 'write'" in err.value.message


def test_charter_misspelt_field() -> None:
    bad = CHARTER.replace("reviewer", "x").replace("owns:", "own:")
    with pytest.raises(ConfigError) as err:
        parse_charter(bad, Path("backend.md"))
    assert err.value.line == 5
    assert "did you mean 'owns'" in err.value.message


def test_charter_bad_yaml() -> None:
    with pytest.raises(ConfigError) as err:
        parse_charter("---\nname: [x\nrole: y\n---\n", Path("a.md"))
    assert err.value.path == Path("a.md")
    assert err.value.line is not None


def test_charter_without_front_matter() -> None:
    with pytest.raises(ConfigError, match="no YAML front matter"):
        parse_charter("# just markdown\n", Path("a.md"))
