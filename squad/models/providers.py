"""Where a Claude model is served: the Anthropic API, Amazon Bedrock or Google Vertex AI.

A model name picks its provider: `claude-...` is the Anthropic API, `bedrock:<model id>` Amazon Bedrock,
`vertex:<model id>` Google Vertex AI. A provider is one small client factory over the official SDK's async
client for it (AsyncAnthropic, AsyncAnthropicBedrock, AsyncAnthropicVertex; retries off: squad's Retrying
policy retries), plus what its failures should tell the user. The SDK does the wire work (SigV4 signing and
the AWS event-stream framing for Bedrock, application default credentials and `:streamRawPredict` URLs for
Vertex); the request body and the streamed events are the Messages API's, so AnthropicModel treats all three
alike. The SDKs' cloud dependencies are optional extras (`squad-agents[bedrock]`, `squad-agents[vertex]`).

Configuration is each provider's standard environment, read by the SDK, boto3 and google-auth:
- Bedrock: AWS_REGION / AWS_DEFAULT_REGION (or the profile's region); the AWS credential chain (AWS_PROFILE,
  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN], ~/.aws files, SSO, web identity, container
  and instance roles) or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK; ANTHROPIC_BEDROCK_BASE_URL overrides
  the endpoint.
- Vertex: CLOUD_ML_REGION; ANTHROPIC_VERTEX_PROJECT_ID, else the project of the application default
  credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, the metadata server;
  GOOGLE_CLOUD_PROJECT); ANTHROPIC_VERTEX_BASE_URL overrides the endpoint.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from squad.errors import ConfigError, ModelConfigError, ModelError

#: The body version the InvokeModel / rawPredict routes require. The SDK would send its own default
#: (`2026-10-21` in SDK 2.14), which Bedrock refuses for the ARN-versioned models of InvokeModel; it only
#: `setdefault`s the field, so the value squad passes in the body wins.
BEDROCK_BODY_VERSION = "bedrock-2023-05-31"
VERTEX_BODY_VERSION = "vertex-2023-10-16"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


_EXAMPLE_IDS = {"bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "vertex": "claude-sonnet-4-5@20250929"}


@dataclass(frozen=True)
class ClientOptions:
    """What every client factory gets: the model name (for messages), squad's read timeout, and the
    first-party overrides (AnthropicModel's `api_key` / `base_url` arguments; a base URL applies to all)."""

    model: str
    timeout_s: float
    api_key: str | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class Provider:
    """One place Claude is served from.

    Attributes:
        key: "anthropic", "bedrock" or "vertex"; the model-name prefix of the cloud ones is `<key>:`.
        title: how messages name it ("Amazon Bedrock").
        make_client: the SDK client factory (blocking: may import boto3 or read credential files).
        stream_type: the content type of a streamed answer.
        body: fields squad adds to every request body (the route's `anthropic_version`).
        request_id_header: the response header that identifies a call to the provider's support.
        stream_errors: error types inside a 200 stream that are worth another attempt.
        overloaded_errors: those of them that mean the provider lacks capacity (worth the fallback model).
        setup_error: maps an exception raised before any request was sent (credentials, project, region)
            to a ModelError, or None when it is not one of those.
        hints: what to check, per failure: "auth" (401), "denied" (403), "model" (404 and other 400s),
            "endpoint" (no answer, or not a stream).
    """

    key: str
    title: str
    make_client: Callable[[ClientOptions], Any]
    stream_type: str
    body: Mapping[str, str]
    request_id_header: str
    stream_errors: frozenset[str]
    overloaded_errors: frozenset[str]
    setup_error: Callable[[BaseException, str], ModelError | None]
    hints: Mapping[str, str]

    @property
    def cloud(self) -> bool:
        return self.key != "anthropic"


def resolve(name: str) -> tuple[Provider, str]:
    """(provider, the model id sent to it) for a model name.

    Raises:
        ConfigError: `bedrock:` / `vertex:` without a model id, or a name no provider serves.
    """
    prefix, colon, model_id = name.partition(":")
    if colon and prefix in ("bedrock", "vertex"):
        if not model_id.strip():
            example = _EXAMPLE_IDS[prefix]
            raise ConfigError(f"model name {name!r} needs a model id after the colon, e.g. `{prefix}:{example}`")
        return _PROVIDERS[prefix], model_id.strip()
    if name.startswith("claude-"):
        return _PROVIDERS["anthropic"], name
    raise ConfigError(f"no provider serves model {name!r}: expected `claude-...`, `bedrock:<id>` or `vertex:<id>`")


def is_cloud_name(name: str) -> bool:
    """True for `bedrock:...` and `vertex:...` model names."""
    return name.startswith(("bedrock:", "vertex:"))


# -- prices: which first-party family a provider's model id belongs to


def family_of(name: str) -> tuple[str, bool] | None:
    """(the first-party model id a name is priced as, whether it is a regional endpoint), or None when the
    family cannot be read from the name (an application inference profile ARN: price it in squad.toml).

    Bedrock: the id after any ARN path, without its geography (`us.`, `eu.`, `global.` ...) and `anthropic.`
    prefix; only `global.` profiles are global endpoints. Vertex: the id itself (`claude-sonnet-4-5@20250929`
    finds the `claude-sonnet-4-5` row); a global endpoint when CLOUD_ML_REGION is `global`. First-party names
    are their own family, never regional.
    """
    if name.startswith("bedrock:"):
        model_id = name.removeprefix("bedrock:").rsplit("/", 1)[-1]
        _, found, family = model_id.partition("anthropic.")
        if not found or not family.startswith("claude"):
            return None
        return family, not model_id.startswith("global.")
    if name.startswith("vertex:"):
        return name.removeprefix("vertex:"), os.environ.get("CLOUD_ML_REGION", "").strip() != "global"
    return name, False


# -- keeping credentials out of messages

#: Environment variables holding a credential that a provider's client may send.
CREDENTIAL_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
)
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-amz-security-token")
_TOKEN_PIECE = re.compile(r"[A-Za-z0-9+_.~-]{16,}")


def redact(text: str, sent: Mapping[str, str] | None = None) -> str:
    """`text` without any credential squad holds or sent: the values of CREDENTIAL_ENV, and the credential
    headers of the request `sent` (the bearer token or API key, the SigV4 access key id and signature, the
    session token). A server (or a proxy) that echoes them into an error must not put them in a journal."""
    secrets = {os.environ.get(name, "") for name in CREDENTIAL_ENV}
    for header in _CREDENTIAL_HEADERS:
        value = (sent or {}).get(header) or ""
        secrets.add(value)
        secrets.add(value.removeprefix("Bearer ").strip())
        secrets.update(_TOKEN_PIECE.findall(value))
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


# -- client factories (the SDK, boto3 and google-auth are imported here, on first use)


def _timeout(opts: ClientOptions) -> Any:
    import httpx2

    # read = longest silence allowed inside a stream; connecting never needs that long
    return httpx2.Timeout(opts.timeout_s, connect=min(10.0, opts.timeout_s))


def _anthropic_client(opts: ClientOptions) -> Any:
    import anthropic

    api_key = opts.api_key or os.environ.get("ANTHROPIC_API_KEY")
    if not api_key and (missing := missing_key(opts.model)) is not None:
        raise missing
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=opts.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
        max_retries=0,  # we retry in one place (the Retrying policy), with our caps
        timeout=_timeout(opts),
    )


def missing_key(model: str) -> ModelConfigError | None:
    """The error of calling `model` on the Anthropic API with neither ANTHROPIC_API_KEY nor ANTHROPIC_AUTH_TOKEN
    set (a configuration error: exit 2), or None when one is set."""
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"):
        return None
    return ModelConfigError(
        f"ANTHROPIC_API_KEY is not set, so model {model!r} cannot be called",
        hint="export ANTHROPIC_API_KEY=... (or use a `scripted:<file>` model for offline runs)",
    )


def _require(extra: str, *modules: str) -> None:
    """Fail with the install command when the provider's optional dependencies are missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"`{extra}:` models need {', '.join(missing)}, which is not installed",
            hint=f"pip install 'squad-agents[{extra}]'",
        )


def _bedrock_client(opts: ClientOptions) -> Any:
    _require("bedrock", "boto3", "botocore")
    from anthropic import AsyncAnthropicBedrock

    try:  # region: AWS_REGION, AWS_DEFAULT_REGION, the profile's; credentials resolve on the first request
        return AsyncAnthropicBedrock(base_url=opts.base_url, max_retries=0, timeout=_timeout(opts))
    except ValueError as exc:
        raise ModelError(
            f"no AWS region for {opts.model!r}: set AWS_REGION or a region in the AWS profile",
            hint="export AWS_REGION=us-east-1 (a region where the model or its inference profile is enabled)",
        ) from exc


def _vertex_client(opts: ClientOptions) -> Any:
    _require("vertex", "google.auth", "requests")
    from anthropic import AsyncAnthropicVertex

    region = os.environ.get("CLOUD_ML_REGION", "").strip()
    if not region:
        raise ModelError(
            f"CLOUD_ML_REGION is not set, so {opts.model!r} cannot be called",
            hint="export CLOUD_ML_REGION=global (or a region that offers the model, e.g. us-east5)",
        )
    project = os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID", "").strip() or None
    credentials = None
    if project is None:  # the SDK would need it before loading credentials: take the credentials' project
        import google.auth

        credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        if not project:
            raise ModelError(
                f"no Google Cloud project for {opts.model!r}: the application default credentials name none",
                hint="export ANTHROPIC_VERTEX_PROJECT_ID=<project id>",
            )
    return AsyncAnthropicVertex(
        region=region,
        project_id=project,
        credentials=credentials,
        base_url=opts.base_url,
        max_retries=0,
        timeout=_timeout(opts),
    )


# -- failures before any request: credentials, project


def _no_setup_error(exc: BaseException, model: str) -> ModelError | None:
    return None


def _bedrock_setup_error(exc: BaseException, model: str) -> ModelError | None:
    from botocore.exceptions import BotoCoreError, HTTPClientError

    from squad.models.errors import TransientModelError

    hint = (
        "configure the AWS credential chain: AWS_PROFILE (`aws configure`, `aws sso login`), AWS_ACCESS_KEY_ID + "
        "AWS_SECRET_ACCESS_KEY, an instance or container role, or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK; "
        "`squad doctor` shows what it finds"
    )
    if isinstance(exc, HTTPClientError):  # the instance or container credential endpoint did not answer
        return TransientModelError(f"could not fetch AWS credentials for {model}: {redact(str(exc))}", hint=hint)
    if isinstance(exc, BotoCoreError) or (isinstance(exc, RuntimeError) and "AWS credentials" in str(exc)):
        return ModelError(f"no usable AWS credentials for {model}: {redact(str(exc))}", hint=hint)
    return None


def _vertex_setup_error(exc: BaseException, model: str) -> ModelError | None:
    from google.auth import exceptions as gauth

    from squad.models.errors import TransientModelError

    login = (
        "run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at a service-account "
        "key or workload identity file; `squad doctor` shows what it finds"
    )
    text = redact(str(exc))
    if isinstance(exc, gauth.TransportError) or (isinstance(exc, gauth.RefreshError) and exc.retryable):
        return TransientModelError(f"could not refresh the Google credentials for {model}: {text}", hint=login)
    if isinstance(exc, gauth.DefaultCredentialsError):
        return ModelError(f"no Google application default credentials for {model}: {text}", hint=login)
    if isinstance(exc, gauth.GoogleAuthError):
        return ModelError(f"the Google credentials for {model} were refused: {text}", hint=login)
    if isinstance(exc, (RuntimeError, ValueError)) and "project" in str(exc).lower():
        return ModelError(f"no Google Cloud project for {model}: {text}", hint="export ANTHROPIC_VERTEX_PROJECT_ID=...")
    return None


_PROVIDERS: dict[str, Provider] = {
    "anthropic": Provider(
        key="anthropic",
        title="the Messages API",
        make_client=_anthropic_client,
        stream_type="text/event-stream",
        body={},
        request_id_header="request-id",
        stream_errors=frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}),
        overloaded_errors=frozenset({"overloaded_error"}),
        setup_error=_no_setup_error,
        hints={
            "auth": "check ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL if you use a proxy)",
            "denied": "check that the workspace of ANTHROPIC_API_KEY may use this model",
            "endpoint": "check ANTHROPIC_BASE_URL and your network",
            "not_a_stream": "ANTHROPIC_BASE_URL must point at a Messages API (or a proxy that streams it); "
            "check it with: curl -s $ANTHROPIC_BASE_URL/v1/messages",
        },
    ),
    "bedrock": Provider(
        key="bedrock",
        title="Amazon Bedrock",
        make_client=_bedrock_client,
        stream_type="application/vnd.amazon.eventstream",
        body={"anthropic_version": BEDROCK_BODY_VERSION},
        request_id_header="x-amzn-requestid",
        stream_errors=frozenset(
            {
                "throttlingException",
                "internalServerException",
                "serviceUnavailableException",
                "modelStreamErrorException",
                "modelTimeoutException",
            }
        ),
        overloaded_errors=frozenset({"serviceUnavailableException"}),
        setup_error=_bedrock_setup_error,
        hints={
            "auth": "check the AWS credentials: `aws sts get-caller-identity` with the same AWS_PROFILE and AWS_REGION",
            "denied": "check the AWS credentials (`aws sts get-caller-identity`), that they allow "
            "bedrock:InvokeModelWithResponseStream on this model, and that access to it is granted in the Bedrock "
            "console of this region",
            "model": "check the id after `bedrock:` (`aws bedrock list-inference-profiles`, "
            "`aws bedrock list-foundation-models`); many models are only invoked through an inference profile id "
            "such as `us.anthropic...` or `global.anthropic...`",
            "endpoint": "check AWS_REGION (the endpoint is bedrock-runtime.<region>.amazonaws.com), "
            "ANTHROPIC_BEDROCK_BASE_URL if set, and your network",
            "not_a_stream": "ANTHROPIC_BEDROCK_BASE_URL must point at a Bedrock runtime endpoint (or be unset)",
        },
    ),
    "vertex": Provider(
        key="vertex",
        title="Google Vertex AI",
        make_client=_vertex_client,
        stream_type="text/event-stream",
        body={"anthropic_version": VERTEX_BODY_VERSION},
        request_id_header="request-id",
        stream_errors=frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}),
        overloaded_errors=frozenset({"overloaded_error"}),
        setup_error=_vertex_setup_error,
        hints={
            "auth": "the Google credentials were refused: run `gcloud auth application-default login` or check "
            "GOOGLE_APPLICATION_CREDENTIALS",
            "denied": "the account needs the Vertex AI User role (roles/aiplatform.user) in the project, and the model "
            "must be enabled in Vertex AI Model Garden",
            "model": "check the id after `vertex:` (e.g. claude-sonnet-4-5@20250929), that the model is enabled in "
            "Model Garden for the project, and that CLOUD_ML_REGION offers it",
            "endpoint": "check CLOUD_ML_REGION, ANTHROPIC_VERTEX_BASE_URL if set, and your network",
            "not_a_stream": "ANTHROPIC_VERTEX_BASE_URL must point at a Vertex AI endpoint (or be unset)",
        },
    ),
}
