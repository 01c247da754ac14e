"""Claude on Google Vertex AI (`vertex:<model id>`): the SDK's AsyncAnthropicVertex with google-auth's application
default credentials, against the loopback Vertex endpoint and its OAuth token endpoint (tests/cloud_servers.py),
through create_model's stack.

Credentials are a real service-account key file (a fresh RSA key) whose token_uri is the loopback server, so
google-auth really signs a JWT grant, the server checks it and issues a token, and the SDK sends that token. (A
user's `gcloud auth application-default login` file cannot be refreshed offline: google-auth always sends those to
Google's own token endpoint, whatever the file says; the doctor tests still read one.) Waits go through a manual
clock (nothing here is timed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloud_servers import VertexServer
from messages_server import Reply
from test_models_anthropic import managed, request, slept

from squad.errors import ModelError
from squad.models.providers import VERTEX_BODY_VERSION

pytestmark = pytest.mark.timeout(30)

MODEL = "vertex:claude-sonnet-4-5@20250929"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _route(server: VertexServer, model: str = "claude-sonnet-4-5@20250929") -> str:
    return (
        f"/v1/projects/{server.project}/locations/{server.region}/publishers/anthropic/models/{model}:streamRawPredict"
    )


@pytest.fixture
def vertex(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[VertexServer]:
    """A loopback Vertex endpoint; application default credentials (a service-account key) from its token
    endpoint, the project and the region from the environment."""
    with VertexServer() as server:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(server.service_account_file(tmp_path)))
        monkeypatch.setenv("ANTHROPIC_VERTEX_PROJECT_ID", server.project)
        monkeypatch.setenv("CLOUD_ML_REGION", server.region)
        monkeypatch.setenv("ANTHROPIC_VERTEX_BASE_URL", f"{server.url}/v1")
        yield server


def test_streams_with_application_default_credentials_through_the_model_stack(vertex: VertexServer) -> None:
    vertex.script(
        "backend/add-api",
        Reply(
            text="Let me read it.",
            tool_calls=[{"name": "read_file", "input": {"path": "app.py"}}],
            usage={
                "input_tokens": 1_000_000,
                "output_tokens": 100_000,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        ),
    )
    events: list[dict[str, Any]] = []
    model, runtime = managed(MODEL)
    resp = run(model.complete(request(), on_event=events.append))

    assert resp.text == "Let me read it."
    assert [(t.name, t.input) for t in resp.tool_uses] == [("read_file", {"path": "app.py"})]
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "Let me read it."
    assert len([e for e in events if e["type"] == "text_delta"]) > 1
    assert resp.model == MODEL
    # us-east5 is a regional endpoint: Sonnet 4.5 list price + 10%
    assert resp.cost_usd == pytest.approx(3.30 + 1.65)
    assert runtime.spend.by_model[MODEL].usd == pytest.approx(resp.cost_usd)

    (grant,) = vertex.token_requests  # google-auth got a token once, with a JWT the server verified
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    (seen,) = vertex.requests
    assert (seen.path, seen.status) == (_route(vertex), 200)
    assert seen.headers["authorization"] == f"Bearer {vertex.issued[0]}"
    assert seen.body["anthropic_version"] == VERTEX_BODY_VERSION and "model" not in seen.body
    assert seen.body["stream"] is True
    assert [bool(b.get("cache_control")) for b in seen.body["system"]] == [False, True, False]


def test_the_token_is_reused_and_the_second_call_reads_the_cache(vertex: VertexServer) -> None:
    model, _ = managed(MODEL)

    async def two_calls() -> tuple[Any, Any]:  # one event loop, as in a run: one client, one token
        first = await model.complete(request())
        return first, await model.complete(request(agent="tester", task="docs", charter="You are tester."))

    first, second = run(two_calls())
    assert first.usage.cache_creation_input_tokens == second.usage.cache_read_input_tokens > 0
    assert len(vertex.token_requests) == 1 and len(vertex.requests) == 2


def test_the_project_comes_from_the_credentials(monkeypatch: pytest.MonkeyPatch, vertex: VertexServer) -> None:
    monkeypatch.delenv("ANTHROPIC_VERTEX_PROJECT_ID")  # the key file names the project
    assert run(managed(MODEL)[0].complete(request())).text == "ok"
    assert len(vertex.token_requests) == 1
    assert vertex.requests[0].path == _route(vertex)


def test_a_quota_429_and_an_overload_mid_stream_are_retried(vertex: VertexServer) -> None:
    vertex.script(
        "backend",
        Reply.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/online_prediction"),
        Reply(text="Starting", stream_error="overloaded_error", message="Overloaded"),
        Reply(text="recovered"),
    )
    events: list[dict[str, Any]] = []
    model, runtime = managed(MODEL)
    resp = run(model.complete(request(), on_event=events.append))

    assert resp.text == "recovered"
    assert [r.status for r in vertex.requests] == [429, 200, 200]
    retries = [e["error"] for e in events if e["type"] == "model_retry"]
    assert "429 RESOURCE_EXHAUSTED: Quota exceeded" in retries[0]
    assert "overloaded_error event in the middle of the stream" in retries[1]
    assert len(slept(runtime)) == 2


def test_permission_denied_says_which_role(vertex: VertexServer) -> None:
    vertex.script("backend", Reply.error(403, "PERMISSION_DENIED", "Permission 'aiplatform.endpoints.predict' denied"))
    with pytest.raises(ModelError) as caught:
        run(managed(MODEL)[0].complete(request()))
    assert "permission denied (403)" in caught.value.message and "aiplatform.endpoints.predict" in caught.value.message
    assert "roles/aiplatform.user" in (caught.value.hint or "")
    assert len(vertex.requests) == 1


def test_an_unknown_model_is_a_final_error_with_a_hint(vertex: VertexServer) -> None:
    vertex.models = {"claude-sonnet-4-5@20250929"}
    with pytest.raises(ModelError) as caught:
        run(managed("vertex:claude-sonnet-4-5@20990101")[0].complete(request()))
    assert "Google Vertex AI refused model 'vertex:claude-sonnet-4-5@20990101' (404 NOT_FOUND)" in caught.value.message
    assert "Model Garden" in (caught.value.hint or "")


def test_no_application_default_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, vertex: VertexServer
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")  # and conftest hides gcloud's file and the metadata server
    with pytest.raises(ModelError) as caught:
        run(managed(MODEL)[0].complete(request()))
    assert caught.value.message.startswith(f"no Google application default credentials for {MODEL}")
    assert "gcloud auth application-default login" in (caught.value.hint or "")
    assert vertex.requests == [] and vertex.token_requests == []


def test_a_key_the_token_endpoint_refuses_is_a_clear_error(tmp_path: Path, vertex: VertexServer) -> None:
    (tmp_path / "rotated").mkdir()
    vertex.service_account_file(tmp_path / "rotated")  # the server now trusts only a newer key
    with pytest.raises(ModelError) as caught:
        run(managed(MODEL)[0].complete(request()))
    assert caught.value.message.startswith(f"the Google credentials for {MODEL} were refused: ")
    assert "invalid_grant" in caught.value.message
    assert "gcloud auth application-default login" in (caught.value.hint or "")
    assert vertex.requests == [] and len(vertex.token_requests) == 1


def test_no_region_and_no_project_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, vertex: VertexServer
) -> None:
    monkeypatch.delenv("CLOUD_ML_REGION")
    with pytest.raises(ModelError, match="CLOUD_ML_REGION is not set"):
        run(managed(MODEL)[0].complete(request()))
    monkeypatch.setenv("CLOUD_ML_REGION", vertex.region)
    monkeypatch.delenv("ANTHROPIC_VERTEX_PROJECT_ID")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(vertex.adc_file(tmp_path)))  # user credentials: no project
    with pytest.raises(ModelError, match="no Google Cloud project") as caught:
        run(managed(MODEL)[0].complete(request()))
    assert "ANTHROPIC_VERTEX_PROJECT_ID" in (caught.value.hint or "")
    assert vertex.requests == []


def test_the_global_region_is_priced_at_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with VertexServer(region="global") as server:
        monkeypatch.setenv("CLOUD_ML_REGION", "global")
        monkeypatch.setenv("ANTHROPIC_VERTEX_PROJECT_ID", server.project)
        monkeypatch.setenv("ANTHROPIC_VERTEX_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(server.service_account_file(tmp_path)))
        usage = {"input_tokens": 1_000_000, "output_tokens": 0, "cache_creation_input_tokens": 0}
        server.script("*", Reply(text="a", usage={**usage, "cache_read_input_tokens": 0}))
        assert run(managed(MODEL)[0].complete(request())).cost_usd == pytest.approx(3.0)
