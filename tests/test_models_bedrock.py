"""Claude on Amazon Bedrock (`bedrock:<model id>`): the SDK's AsyncAnthropicBedrock, signed by botocore with the
AWS credential chain, against the loopback Bedrock runtime (tests/cloud_servers.py), through create_model's stack.

The server checks every request's SigV4 signature itself and answers in the AWS event-stream framing, so what is
proven here is the wire format a real Bedrock endpoint sees: route, signature, body, and the decoding of the answer,
including the throttling a real account meets. Waits go through a manual clock (nothing here is timed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from cloud_servers import AWS_ACCESS_KEY, AWS_SECRET_KEY, AWS_SESSION_TOKEN, BedrockServer
from messages_server import Reply
from test_models_anthropic import managed, request, settings, slept

from squad.config import BudgetSettings, ModelsSettings, Price
from squad.errors import BudgetExceededError, ModelError
from squad.models import AnthropicModel
from squad.models.errors import TransientModelError
from squad.models.providers import BEDROCK_BODY_VERSION

pytestmark = pytest.mark.timeout(30)

MODEL = "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ROUTE = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def _fresh_aws_sessions() -> Iterator[None]:
    """The SDK keeps one boto3 session (and its resolved credentials) per profile and region for the whole
    process; each test here brings its own credentials, so each starts without that cache."""
    from anthropic.lib.aws._auth import _get_session

    _get_session.cache_clear()
    yield
    _get_session.cache_clear()


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[BedrockServer]:
    """A loopback Bedrock runtime; the AWS environment (region, key, secret, session token) and the endpoint
    override point the SDK at it."""
    with BedrockServer() as server:
        for name, value in server.aws_env().items():
            monkeypatch.setenv(name, value)
        yield server


def test_streams_a_signed_request_and_decodes_the_event_stream(bedrock: BedrockServer) -> None:
    bedrock.script(
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
    assert resp.stop_reason == "tool_use"
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "Let me read it."
    assert len([e for e in events if e["type"] == "text_delta"]) > 1  # streamed in several event-stream messages
    assert resp.request_id and resp.request_id.startswith("req_")  # Bedrock's x-amzn-RequestId
    assert resp.model == MODEL  # priced and budgeted under the name squad was given
    # us. is a geographic (regional) profile: Sonnet 4.5 list price + 10%: 1 MTok in at 3.30, 0.1 MTok out at 16.50
    assert resp.cost_usd == pytest.approx(3.30 + 1.65)
    assert runtime.spend.by_model[MODEL].usd == pytest.approx(resp.cost_usd)

    (seen,) = bedrock.requests
    assert (seen.path, seen.status) == (ROUTE, 200)  # the server verified the SigV4 signature
    scope = seen.headers["authorization"].split("Credential=")[1].split(",")[0]
    assert scope.startswith(f"{AWS_ACCESS_KEY}/") and scope.endswith("/us-east-1/bedrock/aws4_request")
    assert seen.headers["x-amz-security-token"] == AWS_SESSION_TOKEN
    assert seen.headers["x-squad-agent"] == "backend/add-api"
    body = seen.body
    assert "model" not in body and "stream" not in body  # the model and streaming are in the route
    assert body["anthropic_version"] == BEDROCK_BODY_VERSION
    # prompt caching: tools, then the system blocks with the breakpoint on the last cached one
    assert [t["name"] for t in body["tools"]] == ["finish", "read_file", "write_file"]
    assert [bool(b.get("cache_control")) for b in body["system"]] == [False, True, False]


def test_the_second_call_reads_the_cached_prefix(bedrock: BedrockServer) -> None:
    model, _ = managed(MODEL)
    first = run(model.complete(request()))
    second = run(model.complete(request(agent="tester", task="docs", charter="You are tester.")))
    assert first.usage.cache_creation_input_tokens == second.usage.cache_read_input_tokens > 0
    assert [r.status for r in bedrock.requests] == [200, 200]


def test_a_429_and_a_throttling_exception_mid_stream_are_retried(bedrock: BedrockServer) -> None:
    bedrock.script(
        "backend",
        Reply.error(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        Reply(text="Starting", stream_error="throttlingException", message="Too many tokens, please wait."),
        Reply(text="recovered"),
    )
    events: list[dict[str, Any]] = []
    model, runtime = managed(MODEL)
    resp = run(model.complete(request(), on_event=events.append))

    assert resp.text == "recovered"
    assert [r.status for r in bedrock.requests] == [429, 200, 200]
    retries = [e for e in events if e["type"] == "model_retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert "429 ThrottlingException: Too many requests" in retries[0]["error"]
    assert "throttlingException event in the middle of the stream: Too many tokens" in retries[1]["error"]
    assert len(slept(runtime)) == 2
    assert runtime.spend.run.turns == 1


@pytest.mark.parametrize(
    ("exception", "retried"),
    [("serviceUnavailableException", True), ("modelStreamErrorException", True), ("validationException", False)],
)
def test_stream_exceptions_are_retried_only_when_transient(
    bedrock: BedrockServer, exception: str, retried: bool
) -> None:
    bedrock.script("backend", Reply(text="x", stream_error=exception), Reply(text="ok"))
    model, _ = managed(MODEL)
    if retried:
        assert run(model.complete(request())).text == "ok"
    else:
        with pytest.raises(ModelError, match=f"failed mid-stream with {exception}"):
            run(model.complete(request()))
    assert len(bedrock.requests) == (2 if retried else 1)


def test_a_model_that_needs_an_inference_profile_is_a_final_error_with_a_hint(bedrock: BedrockServer) -> None:
    message = "Invocation of model ID anthropic.claude-sonnet-4-5 with on-demand throughput isn't supported."
    bedrock.script("backend", Reply.error(400, "ValidationException", message))
    model, _ = managed("bedrock:anthropic.claude-sonnet-4-5-20250929-v1:0")
    with pytest.raises(ModelError) as caught:
        run(model.complete(request()))
    assert "Amazon Bedrock refused model 'bedrock:anthropic.claude-sonnet-4-5-20250929-v1:0'" in caught.value.message
    assert "400 ValidationException" in caught.value.message and message in caught.value.message
    assert "inference profile" in (caught.value.hint or "")
    assert len(bedrock.requests) == 1


def test_a_wrong_secret_key_is_refused_and_echoed_credentials_never_reach_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with BedrockServer(secret_key=AWS_SECRET_KEY + "-other", echo_credentials=True) as server:
        for name, value in server.aws_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)  # not the server's: the signature is wrong
        model, _ = managed(MODEL)
        with pytest.raises(ModelError) as caught:
            run(model.complete(request()))
        (seen,) = server.requests

    error = caught.value
    assert seen.status == 403 and error.message.startswith(f"permission denied (403) calling {MODEL}")
    assert "signature we calculated does not match" in error.message
    assert "aws sts get-caller-identity" in (error.hint or "")
    shown = f"{error.message} {error.hint}"
    signature = seen.headers["authorization"].rsplit("Signature=", 1)[1]
    for secret in (AWS_SESSION_TOKEN, AWS_ACCESS_KEY, AWS_SECRET_KEY, signature):
        assert secret not in shown
    assert "[redacted]" in error.message  # the server did echo them


def test_a_bedrock_api_key_is_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with BedrockServer(bedrock_api_key="ABSKloopbackBedrockApiKey0123456789") as server:
        monkeypatch.setenv("AWS_REGION", server.region)
        monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", server.url)
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKloopbackBedrockApiKey0123456789")
        model, _ = managed(MODEL)
        assert run(model.complete(request())).text == "ok"
        (seen,) = server.requests
    assert seen.headers["authorization"] == "Bearer ABSKloopbackBedrockApiKey0123456789"
    assert "x-amz-date" not in seen.headers


def test_no_aws_credentials_is_a_clear_error_before_any_request(
    monkeypatch: pytest.MonkeyPatch, bedrock: BedrockServer
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    model, _ = managed(MODEL)
    with pytest.raises(ModelError) as caught:
        run(model.complete(request()))
    assert not isinstance(caught.value, TransientModelError)
    assert caught.value.message.startswith(f"no usable AWS credentials for {MODEL}")
    assert "AWS_PROFILE" in (caught.value.hint or "") and "AWS_BEARER_TOKEN_BEDROCK" in (caught.value.hint or "")
    assert bedrock.requests == []


def test_a_missing_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, bedrock: BedrockServer) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(ModelError, match="no-such-profile"):
        run(managed(MODEL)[0].complete(request()))
    assert bedrock.requests == []


def test_no_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, bedrock: BedrockServer) -> None:
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ModelError, match="no AWS region") as caught:
        run(managed(MODEL)[0].complete(request()))
    assert "export AWS_REGION=" in (caught.value.hint or "")
    assert bedrock.requests == []


def test_a_price_override_per_provider_wins_and_a_first_party_one_does_not_apply(bedrock: BedrockServer) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 0, "cache_creation_input_tokens": 0}
    bedrock.script("*", Reply(text="a", usage={**usage, "cache_read_input_tokens": 0}))
    bedrock.script("*", Reply(text="b", usage={**usage, "cache_read_input_tokens": 0}))
    cheap = Price(input=1.0, output=5.0, cache_write_5m=1.25, cache_write_1h=2.0, cache_read=0.1)
    dear = Price(input=99.0, output=99.0, cache_write_5m=99.0, cache_write_1h=99.0, cache_read=99.0)
    st = settings()
    st.pricing = {"bedrock:us.anthropic.claude-sonnet-4-5": cheap, "claude-sonnet-4-5": dear}
    model, _ = managed(MODEL, st)
    assert run(model.complete(request())).cost_usd == pytest.approx(1.0)  # the bedrock: row, by prefix
    other, _ = managed("bedrock:global.anthropic.claude-sonnet-4-5-20250929-v1:0", st)
    assert run(other.complete(request())).cost_usd == pytest.approx(3.0)  # global: list price, not the claude- row


def test_an_unpriced_application_profile_fails_closed_under_a_dollar_budget(bedrock: BedrockServer) -> None:
    arn = "bedrock:arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    model, _ = managed(arn, settings(budgets=BudgetSettings(run_usd=5.0)))
    with pytest.raises(BudgetExceededError, match="no price is known for model 'bedrock:arn:") as caught:
        run(model.complete(request()))
    assert f'[pricing."{arn}"]' in (caught.value.hint or "")
    assert bedrock.requests == []  # refused before the call


def test_overloaded_bedrock_fails_over_to_the_fallback_model(bedrock: BedrockServer) -> None:
    bedrock.script("backend", *[Reply.error(503, "ServiceUnavailableException", "Bedrock is unavailable")] * 3)
    st = settings(models=ModelsSettings(request_timeout_s=5.0, fallback=["bedrock:global.anthropic.claude-haiku-4-5"]))
    bedrock.script("*", Reply(text="from the fallback"))
    model, _ = managed(MODEL, st)
    resp = run(model.complete(request()))
    assert resp.text == "from the fallback" and resp.model == "bedrock:global.anthropic.claude-haiku-4-5"
    assert [r.path.split("/")[2] for r in bedrock.requests] == [
        *["us.anthropic.claude-sonnet-4-5-20250929-v1:0"] * 3,
        "global.anthropic.claude-haiku-4-5",
    ]


def test_build_params_sends_the_model_id_without_the_prefix() -> None:
    params = AnthropicModel(MODEL).build_params(request())
    assert params["model"] == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
