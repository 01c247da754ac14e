"""`squad doctor` with `bedrock:` / `vertex:` models: where the credentials come from, the region, the project.

Real boto3 and google-auth read real credential files and environments; the suite's network guard (conftest)
fails any check that would reach for the network, so these also prove doctor stays offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cloud_servers import AWS_ACCESS_KEY, AWS_SECRET_KEY, AWS_SESSION_TOKEN, VertexServer

from squad.cli.doctor import doctor
from squad.infra.scaffold import scaffold

BEDROCK = "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX = "vertex:claude-sonnet-4-5@20250929"


def _doctor() -> tuple[int, dict[str, dict[str, str]], str]:
    """Exit code, the checks by name (JSON), and the plain-text output."""
    result = CliRunner().invoke(doctor, ["--json"], catch_exceptions=False)
    text = CliRunner().invoke(doctor, [], catch_exceptions=False).output
    return result.exit_code, {c["name"]: c for c in json.loads(result.output)}, text


@pytest.fixture
def team_repo(repo: Path) -> Path:
    scaffold(repo)
    return repo


def _use(repo: Path, default: str, fallback: str = "") -> None:
    settings = repo / ".squad/squad.toml"
    text = settings.read_text().replace('default = "claude-sonnet-5-5"', f'default = "{default}"', 1)
    settings.write_text(text.replace("fallback = []", f"fallback = [{fallback}]", 1))


def test_no_cloud_check_without_a_cloud_model(team_repo: Path) -> None:
    _, checks, _ = _doctor()
    assert "bedrock" not in checks and "vertex" not in checks


def test_bedrock_credentials_from_the_environment(team_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(team_repo, BEDROCK)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    code, checks, text = _doctor()
    assert code == 0, checks
    assert checks["models"]["status"] == "ok"
    assert checks["api key"]["message"] == "ANTHROPIC_API_KEY is not set; not needed (no claude-* model)"
    assert checks["bedrock"] == {
        "name": "bedrock",
        "status": "ok",
        "message": "AWS credentials from the environment (AWS_ACCESS_KEY_ID), profile default; region us-east-1",
        "fix": "",
    }
    for secret in (AWS_ACCESS_KEY, AWS_SECRET_KEY, AWS_SESSION_TOKEN):
        assert secret not in text


def test_bedrock_credentials_and_region_from_a_profile(
    team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(team_repo, BEDROCK)
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[dev]\naws_access_key_id = {AWS_ACCESS_KEY}\naws_secret_access_key = {AWS_SECRET_KEY}\n")
    config = tmp_path / "config"
    config.write_text("[profile dev]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "dev")
    _, checks, text = _doctor()
    assert checks["bedrock"]["status"] == "ok"
    assert (
        checks["bedrock"]["message"]
        == "AWS credentials from the shared credentials file, profile dev; region eu-west-1"
    )
    assert AWS_SECRET_KEY not in text


def test_bedrock_api_key(team_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(team_repo, BEDROCK)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKdoctorMustNotPrintThis0123")
    _, checks, text = _doctor()
    assert checks["bedrock"]["message"] == (
        "AWS credentials from a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK); region us-west-2"
    )
    assert "ABSKdoctorMustNotPrintThis0123" not in text


def test_bedrock_problems(team_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(team_repo, BEDROCK)
    code, checks, _ = _doctor()  # nothing configured: only an instance role could help; a warning
    assert code == 0 and checks["bedrock"]["status"] == "warn"
    assert "no AWS credentials" in checks["bedrock"]["message"] and "aws sso login" in checks["bedrock"]["fix"]

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
    code, checks, _ = _doctor()  # credentials, but no region
    assert code == 1 and checks["bedrock"]["status"] == "error"
    assert checks["bedrock"]["message"].startswith("no AWS region")
    assert "export AWS_REGION=" in checks["bedrock"]["fix"]

    monkeypatch.setenv("AWS_PROFILE", "nonesuch")
    code, checks, _ = _doctor()
    assert code == 1 and "nonesuch" in checks["bedrock"]["message"]


def test_an_empty_cloud_model_id_is_a_model_error(team_repo: Path) -> None:
    _use(team_repo, "bedrock:", fallback='"vertex:claude-haiku-4-5@20251001"')
    code, checks, _ = _doctor()
    assert code == 1
    assert "'bedrock:' ([models] default, agent backend" in checks["models"]["message"]
    assert "needs a model id after the colon" in checks["models"]["message"]
    assert "vertex:claude-haiku" not in checks["models"]["message"]
    assert {"bedrock", "vertex"} <= set(checks)  # both providers are checked


def test_vertex_service_account_names_its_project(
    team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(team_repo, VERTEX)
    with VertexServer(project="acme-prod") as server:  # only for a real key file; nothing is refreshed
        key = server.service_account_file(tmp_path)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("CLOUD_ML_REGION", "global")
    code, checks, text = _doctor()
    assert code == 0, checks
    assert checks["vertex"]["message"] == (
        f"Google credentials (service account squad@acme-prod.iam.gserviceaccount.com) from "
        f"GOOGLE_APPLICATION_CREDENTIALS ({key}); project acme-prod (the credentials); region global"
    )
    assert "PRIVATE KEY" not in text


def test_vertex_gcloud_user_login_needs_a_project(
    team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(team_repo, VERTEX)
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    with VertexServer() as server:
        user_file = server.adc_file(gcloud)  # where `gcloud auth application-default login` writes it
        refresh_token = server.refresh_token
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.setenv("CLOUD_ML_REGION", "us-east5")
    code, checks, _ = _doctor()
    assert code == 1 and checks["vertex"]["status"] == "error"
    assert checks["vertex"]["message"].startswith("no Google Cloud project")
    assert checks["vertex"]["fix"] == "export ANTHROPIC_VERTEX_PROJECT_ID=<project id>"

    monkeypatch.setenv("ANTHROPIC_VERTEX_PROJECT_ID", "acme-dev")
    code, checks, text = _doctor()
    assert code == 0, checks
    assert checks["vertex"]["message"] == (
        f"Google credentials (user credentials) from `gcloud auth application-default login` ({user_file}); "
        "project acme-dev (ANTHROPIC_VERTEX_PROJECT_ID); region us-east5"
    )
    assert refresh_token not in text


def test_vertex_problems(team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(team_repo, VERTEX)
    code, checks, _ = _doctor()
    assert code == 1 and checks["vertex"]["message"] == "CLOUD_ML_REGION is not set"

    monkeypatch.setenv("CLOUD_ML_REGION", "global")
    code, checks, _ = _doctor()  # no credentials file: only a Google Cloud VM's metadata server could help
    assert code == 0 and checks["vertex"]["status"] == "warn"
    assert "gcloud auth application-default login" in checks["vertex"]["fix"]

    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "nonsense"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(broken))
    code, checks, _ = _doctor()
    assert code == 1 and checks["vertex"]["message"].startswith("the application default credentials cannot be used")
