"""The loopback Messages server itself: auth headers, JSON and SSE, routing, keep-alive, 404s.

Other test files (the end-to-end `squad run` test) rely on it, so its contract is tested here.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import anthropic
import pytest
from messages_server import MessagesServer, Reply

pytestmark = pytest.mark.timeout(30)

BODY = {"model": "claude-sonnet-5-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def post(
    server: MessagesServer, headers: dict[str, str], body: dict[str, Any] | None = None, path: str = "/v1/messages"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("POST", path, body=json.dumps(body or BODY), headers={"content-type": "application/json", **headers})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data, {k.lower(): v for k, v in resp.getheaders()}


def test_accepts_x_api_key_and_bearer_refuses_neither(messages_server: MessagesServer) -> None:
    assert post(messages_server, {"x-api-key": "k"})[0] == 200
    assert post(messages_server, {"authorization": "Bearer k"})[0] == 200
    status, data, headers = post(messages_server, {})
    assert status == 401 and data["error"]["type"] == "authentication_error"
    assert headers["request-id"].startswith("req_")


def test_json_mode_through_the_sdk(messages_server: MessagesServer) -> None:
    messages_server.script("*", Reply(text="plain json", usage={"output_tokens": 42}))

    async def main() -> Any:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=messages_server.url, max_retries=0)
        try:
            return await client.messages.create(**BODY)
        finally:
            await client.close()

    message = asyncio.run(main())
    assert message.content[0].text == "plain json" and message.usage.output_tokens == 42
    assert messages_server.requests[0].body.get("stream") is None


def test_routing_prefers_agent_task_then_agent_then_star(messages_server: MessagesServer) -> None:
    messages_server.script("*", Reply(text="star"))
    messages_server.script("a", Reply(text="agent"))
    messages_server.script("a/t1", Reply(text="agent-task"))

    def text(route: str) -> str:
        return post(messages_server, {"x-api-key": "k", "x-squad-agent": route})[1]["content"][0]["text"]

    assert [text("a/t1"), text("a/t1"), text("a/t2"), text("b/x")] == ["agent-task", "agent", "star", "ok"]
    assert messages_server.pending("a") == 0
    assert [(r.agent, r.task) for r in messages_server.requests][:2] == [("a", "t1"), ("a", "t1")]


def test_keep_alive_serves_many_requests_on_one_connection(messages_server: MessagesServer) -> None:
    host, port = messages_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    for _ in range(5):
        conn.request("POST", "/v1/messages", body=json.dumps(BODY), headers={"x-api-key": "k"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.close()
    assert len({r.peer for r in messages_server.requests}) == 1  # one TCP connection for all five


def test_sdk_reuses_its_connection(messages_server: MessagesServer) -> None:
    async def main() -> None:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=messages_server.url, max_retries=0)
        for _ in range(3):
            async with client.messages.stream(**BODY) as stream:
                await stream.get_final_message()
        await client.close()

    asyncio.run(main())
    assert len(messages_server.requests) == 3 and len({r.peer for r in messages_server.requests}) == 1


def test_unknown_path_and_bad_body(messages_server: MessagesServer) -> None:
    assert post(messages_server, {"x-api-key": "k"}, path="/v1/other")[0] == 404
    status, data, _ = post(messages_server, {"x-api-key": "k"}, body={"model": "x"})
    assert status == 400 and "messages" in data["error"]["message"]


def test_error_reply_carries_headers(messages_server: MessagesServer) -> None:
    messages_server.script("a", Reply.error(429, "rate_limit_error", "slow down", retry_after="7"))
    status, data, headers = post(messages_server, {"x-api-key": "k", "x-squad-agent": "a/t"})
    assert (status, data["error"]["type"], headers["retry-after"]) == (429, "rate_limit_error", "7")
    assert messages_server.requests[0].status == 429
