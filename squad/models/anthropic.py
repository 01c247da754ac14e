"""AnthropicModel: one streaming Messages API call through the official SDK, mapped to our types.

The SDK (`anthropic`, about a second to import) is imported on first use, never at import time of
squad.models. The model name picks the provider (squad.models.providers): `claude-...` is the Anthropic API
(`ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` are honoured, so any Messages-API compatible server works),
`bedrock:<id>` Amazon Bedrock and `vertex:<id>` Google Vertex AI through the SDK's clients for them. Streaming,
prompt caching, the error mapping and every policy around the model are the same for all three.

This class makes exactly ONE attempt per `complete` (SDK `max_retries=0`) and turns every failure
into either a `TransientModelError` (worth retrying: 408/409/429/5xx/529, an `error` event inside
the stream, a dropped connection, a read timeout after the headers) or a `ModelError` that says what
to do. Retries, backoff, the fallback chain and the circuit breaker are policies stacked around it by
`create_model` (squad.models.policies).

Prompt caching: tools come first in the request, then the system blocks; the last SystemBlock with
`cache=True` gets `cache_control: {"type": "ephemeral"}`, so tools + the shared system blocks form one
cached prefix that every specialist of a run sends byte for byte.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from squad.config import Settings
from squad.domain.text import clean_json, clean_text
from squad.errors import ModelConfigError, ModelError
from squad.models.base import (
    ContentBlock,
    Message,
    ModelRequest,
    ModelResponse,
    StreamCallback,
    TextBlock,
    ToolUseBlock,
    Usage,
    emit,
    tool_use,
)
from squad.models.errors import TransientModelError
from squad.models.governor import parse_retry_after
from squad.models.providers import ClientOptions, redact, resolve

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

#: Status codes worth another attempt (the same set the SDK itself would retry).
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class AnthropicModel:
    """A Claude model over the Messages API (streaming, tool use, prompt caching).

    Args:
        name: model name, e.g. "claude-sonnet-5-5", "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "vertex:claude-sonnet-4-5@20250929".
        settings: for `models.request_timeout_s` (the SDK's read timeout; connect is at most 10 s).
        api_key: overrides ANTHROPIC_API_KEY (Anthropic API only).
        base_url: overrides the provider's endpoint (ANTHROPIC_BASE_URL, ANTHROPIC_BEDROCK_BASE_URL,
            ANTHROPIC_VERTEX_BASE_URL).
        on_headers: called with the response headers of every attempt (success or error);
            create_model points it at the RateGovernor so rate-limit headers tighten it.

    Raises:
        ConfigError: a name no provider serves, or `bedrock:` / `vertex:` without a model id.
    """

    def __init__(
        self,
        name: str,
        *,
        settings: Settings | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        on_headers: Callable[[Mapping[str, str]], None] | None = None,
    ) -> None:
        self.name = name
        self.provider, self.model_id = resolve(name)
        self.settings = settings or Settings()
        self.on_headers = on_headers
        self._api_key = api_key
        self._base_url = base_url
        self._client: AsyncAnthropic | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- request building (pure; also used by tests to check the shared prefix)
    def build_params(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API body for `request` (without `stream`), in a stable key order."""
        params: dict[str, Any] = {"model": self.model_id, "max_tokens": request.max_tokens}
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
            ]
        if request.system:
            last_cached = max((i for i, b in enumerate(request.system) if b.cache), default=-1)
            system: list[dict[str, Any]] = []
            for i, block in enumerate(request.system):
                item: dict[str, Any] = {"type": "text", "text": clean_text(block.text)}
                if i == last_cached:
                    item["cache_control"] = {"type": "ephemeral"}
                system.append(item)
            params["system"] = system
        params["messages"] = [_message_param(m) for m in request.messages]
        if request.tool_choice:
            params["tool_choice"] = {"type": "tool", "name": request.tool_choice}
        return params

    # -- the call
    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        """One streaming attempt. Raises TransientModelError (retry it) or ModelError (don't)."""
        import anthropic
        import httpx2

        provider = self.provider
        client = await self._get_client()
        params = self.build_params(request)
        headers = {"x-squad-agent": f"{request.agent}/{request.task}"}
        start = time.perf_counter()
        ttft: float | None = None
        try:
            async with client.messages.stream(
                **params, extra_headers=headers, extra_body=dict(provider.body) or None
            ) as stream:
                if self.on_headers is not None:
                    self.on_headers(stream.response.headers)
                if not _is_stream(stream.response.headers, provider.stream_type):
                    raise await self._not_a_stream(stream.response, str(client.base_url))
                started = False
                events = stream.__aiter__()
                while True:
                    try:
                        event = await events.__anext__()
                    except StopAsyncIteration:
                        break
                    except ValueError as exc:  # only the SDK's own parsing runs in here, not our callback
                        raise TransientModelError(
                            f"{self.name} sent a response the SDK cannot parse ({_short(str(exc))}); asking again",
                            hint="a proxy or gateway between squad and the API may be altering responses",
                        ) from exc
                    if event.type == "message_start":
                        started = True
                    if event.type != "content_block_delta":
                        continue
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    if on_event is not None and event.delta.type == "text_delta":
                        await emit(
                            on_event,
                            {
                                "type": "text_delta",
                                "text": event.delta.text,
                                "agent": request.agent,
                                "task": request.task,
                            },
                        )
                if not started:  # the SDK would assert on get_final_message(): no message ever began
                    raise TransientModelError(f"the stream from {self.name} ended before the message started")
                final = await stream.get_final_message()
                request_id = stream.request_id or stream.response.headers.get(provider.request_id_header)
            if final.stop_reason is None:  # the body ended cleanly but before message_delta/message_stop
                raise TransientModelError(f"the stream from {self.name} ended before the message was complete")
        except ModelError:
            raise
        except anthropic.APIStatusError as exc:
            if self.on_headers is not None and exc.status_code != 200:
                self.on_headers(exc.response.headers)
            raise self._status_error(exc, request) from exc
        except anthropic.APIConnectionError as exc:  # includes APITimeoutError; before any response
            raise TransientModelError(
                f"no response from {provider.title} at {client.base_url} ({type(exc).__name__}: {redact(str(exc))})",
                hint=provider.hints["endpoint"],
            ) from exc
        except httpx2.TransportError as exc:  # after the headers: read timeout, dropped connection
            what = "read timed out" if isinstance(exc, httpx2.TimeoutException) else "connection dropped"
            raise TransientModelError(
                f"the stream from {self.name} {what} after the response started ({type(exc).__name__})"
            ) from exc
        except Exception as exc:  # a cloud client's credentials or project, resolved as the request is signed
            error = provider.setup_error(exc, self.name)
            if error is None:
                raise
            raise error from exc
        # A cloud provider reports its own id for the model (or none); the name squad was asked for is the one
        # its prices and budgets are kept under.
        answered = self.name if provider.cloud else (final.model or self.name)
        return ModelResponse(
            content=tuple(_our_block(b) for b in final.content if b.type in ("text", "tool_use")),
            stop_reason=final.stop_reason or "end_turn",
            usage=Usage(
                input_tokens=final.usage.input_tokens,
                output_tokens=final.usage.output_tokens,
                cache_creation_input_tokens=final.usage.cache_creation_input_tokens or 0,
                cache_read_input_tokens=final.usage.cache_read_input_tokens or 0,
            ),
            model=answered,
            latency_s=time.perf_counter() - start,
            ttft_s=ttft,
            request_id=request_id,
            stop_detail=_stop_detail(final.stop_details),
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- internals
    async def _get_client(self) -> AsyncAnthropic:
        """The SDK client of the running event loop (an httpx pool cannot cross loops).

        A cloud client is made in a worker thread: making it may import boto3 or read credential files (and
        on a cloud VM ask its metadata server), which must not stall the other agents on this loop.
        """
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        opts = ClientOptions(
            model=self.name,
            timeout_s=self.settings.models.request_timeout_s,
            api_key=self._api_key,
            base_url=self._base_url,
        )
        if not self.provider.cloud:
            client = self.provider.make_client(opts)
        else:
            try:
                client = await asyncio.to_thread(self.provider.make_client, opts)
            except ModelError:
                raise
            except Exception as exc:
                error = self.provider.setup_error(exc, self.name)
                if error is None:
                    raise
                raise error from exc
            if self._client is not None and self._client_loop is loop:  # another call made one meanwhile
                await client.close()
                return self._client
        self._client, self._client_loop = client, loop
        return client

    async def _not_a_stream(self, response: Any, base_url: str) -> TransientModelError:
        """A 200 that is not an event stream (a proxy's JSON, a login page): transient, saying what was sent."""
        kind = response.headers.get("content-type") or "no content type"
        body = bytearray()
        async for chunk in response.aiter_bytes():  # a few KB say enough; a huge page is not read to the end
            body += chunk
            if len(body) >= 4096:
                break
        text = redact(" ".join(body.decode("utf-8", "replace").split()), response.request.headers)[:200]
        return TransientModelError(
            f"{self.name}: the server at {base_url} answered 200 with {kind} instead of an event stream: {text!r}",
            hint=self.provider.hints["not_a_stream"],
        )

    def _status_error(self, exc: Any, request: ModelRequest) -> ModelError:
        """Map an SDK APIStatusError to a retryable or a final error with a message that says what to do."""
        provider = self.provider
        status: int = exc.status_code
        kind, detail = _error_kind_and_detail(exc)
        sent = exc.response.request.headers
        kind, detail = redact(kind, sent), redact(detail, sent)
        rid_value = exc.request_id or exc.response.headers.get(provider.request_id_header)
        rid = f" (request-id {rid_value})" if rid_value else ""
        who = f"agent {request.agent!r} on task {request.task!r}"
        if status == 200:  # an `error` event (a Bedrock `exception` message) inside the stream
            if kind in provider.stream_errors:
                return TransientModelError(
                    f"{self.name} sent an {kind} event in the middle of the stream: {detail}{rid}",
                    overloaded=kind in provider.overloaded_errors,
                )
            return ModelError(f"{self.name} failed mid-stream with {kind or 'an error'}: {detail}{rid}")
        if status in RETRYABLE_STATUS or status >= 500:
            return TransientModelError(
                f"{self.name} returned {status} {kind}: {detail}{rid}",
                retry_after=parse_retry_after(exc.response.headers),
                status=status,
                overloaded=status in (503, 529) or kind in provider.overloaded_errors,
            )
        if status == 401:
            rejected = "the credentials were rejected" if provider.cloud else "the API key was rejected"
            return ModelConfigError(
                f"authentication failed (401) calling {self.name}: {rejected}{rid}", hint=provider.hints["auth"]
            )
        if status == 403:
            denied = f"permission denied (403) calling {self.name}: {detail}{rid}"
            return ModelConfigError(denied, hint=provider.hints["denied"])
        if status == 413 or (status == 400 and "prompt is too long" in detail.lower()):
            return ModelError(
                f"context too large for {who} ({self.name}, {status}): {detail}{rid}",
                hint="lower [context] repo_map_tokens / decisions_tokens / agents_md_tokens in .squad/squad.toml, "
                "or split the task into smaller ones",
            )
        if provider.cloud and status in (400, 404):  # mostly a model id the provider does not serve here
            return ModelConfigError(
                f"{provider.title} refused model {self.name!r} ({status} {kind}): {detail}{rid}",
                hint=provider.hints["model"],
            )
        if status == 404:
            return ModelConfigError(
                f"unknown model name {self.name!r} (404 from the API: {detail}){rid}",
                hint="check the model names in .squad/squad.toml ([models]) and the `model:` field of the "
                f"charter .squad/agents/{request.agent or '<agent>'}.md",
            )
        if status == 400:
            return ModelError(
                f"the API rejected the request of {who} (400 {kind}): {detail}{rid}",
                hint="this is a bug in squad or in the scripted request; please report it with the run folder",
            )
        return ModelError(f"{self.name} call for {who} failed: {status} {kind}: {detail}{rid}")


def _error_kind_and_detail(exc: Any) -> tuple[str, str]:
    """(error type, message) of an APIStatusError in any provider's format: Anthropic's `error.type` and
    `error.message`, Google's `error.status` and `error.message`, Bedrock's `x-amzn-ErrorType` header and
    `message`."""
    body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    kind = exc.type or error.get("status") or exc.response.headers.get("x-amzn-errortype", "").split(":")[0]
    detail = exc.api_message or body.get("message") or str(exc)
    return str(kind or ""), str(detail)


def _message_param(message: Message) -> dict[str, Any]:
    return {"role": message.role, "content": [_block_param(b) for b in message.content]}


def _block_param(block: ContentBlock) -> dict[str, Any]:
    # clean_*: a lone surrogate anywhere (a file name that is not UTF-8 in a tool result, say) would make
    # the SDK's JSON encoder raise, and every later call of this agent with it.
    if isinstance(block, TextBlock):
        return {"type": "text", "text": clean_text(block.text)}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": clean_json(block.input)}
    param: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": clean_text(block.content),
    }
    if block.is_error:
        param["is_error"] = True
    return param


def _our_block(block: Any) -> ContentBlock:
    if block.type == "text":
        return TextBlock(text=clean_text(block.text))
    return tool_use(block.id, block.name, block.input)


def _short(text: str, limit: int = 200) -> str:
    text = clean_text(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stop_detail(details: Any) -> str | None:
    """What the API said about why it stopped (a refusal's category and explanation), as one line."""
    if details is None:
        return None
    parts = [str(v) for v in (getattr(details, "category", None), getattr(details, "explanation", None)) if v]
    return ": ".join(parts) or None


def _is_stream(headers: Mapping[str, str], stream_type: str) -> bool:
    return headers.get("content-type", "").split(";")[0].strip().lower() == stream_type
