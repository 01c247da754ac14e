"""Claude on Bedrock and Vertex versus the Anthropic API: what a call costs squad's side, measured side by side.

The same request through AnthropicModel (no policy stack) to three loopback servers (tests/messages_server.py and
tests/cloud_servers.py) that answer at once, interleaved call by call in one event loop: the Anthropic API (SSE),
Bedrock (botocore SigV4 signing of every request, AWS event-stream decoding) and Vertex (a bearer token fetched
once and reused, SSE). What differs is the client's own work per call; the ratios say what Bedrock's signing and
framing add. Also: the first call of each provider in a fresh process (imports, client, credentials), which a run
pays once per model.

Run: `python benchmarks/run.py cloud` (or this file directly).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback servers live with the tests
sys.path.insert(0, str(ROOT))

from cloud_servers import BedrockServer, VertexServer  # noqa: E402
from messages_server import MessagesServer  # noqa: E402

from squad.models import AnthropicModel, Message, ModelRequest, SystemBlock, TextBlock, ToolSpec  # noqa: E402

CALLS = 200
MODELS = {
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex": "vertex:claude-sonnet-4-5@20250929",
}


def _request() -> ModelRequest:
    tools = tuple(
        ToolSpec(n, f"{n} tool", {"type": "object", "properties": {"path": {"type": "string"}}})
        for n in ("diff", "finish", "list_files", "read_file", "search", "write_file")
    )
    return ModelRequest(
        system=(SystemBlock("Team norms. " * 100, cache=True), SystemBlock("You are the backend specialist.")),
        messages=(Message("user", (TextBlock("y" * 2000),)),),
        tools=tools,
        max_tokens=1024,
        agent="bench",
        task="bench",
    )


def _environment(first: MessagesServer, bedrock: BedrockServer, vertex: VertexServer, folder: Path) -> dict[str, str]:
    """Every provider pointed at its loopback server; nothing of this machine's AWS or Google setup is read."""
    return {
        "ANTHROPIC_BASE_URL": first.url,
        "ANTHROPIC_API_KEY": "sk-bench",
        **bedrock.aws_env(),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "GOOGLE_APPLICATION_CREDENTIALS": str(vertex.service_account_file(folder)),
        "ANTHROPIC_VERTEX_BASE_URL": f"{vertex.url}/v1",
        "CLOUD_ML_REGION": vertex.region,
        "CLOUDSDK_CONFIG": str(folder / "gcloud"),
        "NO_GCE_CHECK": "true",
    }


async def _per_call() -> dict[str, list[float]]:
    models = {key: AnthropicModel(name) for key, name in MODELS.items()}
    request = _request()
    for model in models.values():  # warm: imports, clients, the Vertex token
        await model.complete(request)
    times: dict[str, list[float]] = {key: [] for key in models}
    for _ in range(CALLS):
        for key, model in models.items():  # interleaved: machine noise hits all three alike
            start = time.perf_counter()
            await model.complete(request)
            times[key].append(time.perf_counter() - start)
    for model in models.values():
        await model.aclose()
    return times


_FIRST_CALL = """
import asyncio, sys, time
start = time.perf_counter()
from squad.models import AnthropicModel, Message, ModelRequest, TextBlock
async def main():
    model = AnthropicModel(sys.argv[1])
    await model.complete(ModelRequest(system=(), messages=(Message("user", (TextBlock("hi"),)),), max_tokens=16))
asyncio.run(main())
print(time.perf_counter() - start)
"""


def _first_call(name: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL, name], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    with (
        MessagesServer() as first,
        BedrockServer() as bedrock,
        VertexServer() as vertex,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = _environment(first, bedrock, vertex, Path(tmp))
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            times = asyncio.run(_per_call())
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        firsts = {key: statistics.median(_first_call(name, env) for _ in range(3)) for key, name in MODELS.items()}
    base = statistics.median(times["anthropic"])
    print(f"per call through AnthropicModel, median of {CALLS} interleaved calls to loopback servers:")
    for key, samples in times.items():
        median = statistics.median(samples)
        print(f"  {key:<9} {median * 1000:7.2f} ms   x{median / base:.2f} of the Anthropic API")
    print("first call in a fresh process (imports, client, credentials), median of 3:")
    for key, seconds in firsts.items():
        print(f"  {key:<9} {seconds * 1000:7.0f} ms   x{seconds / firsts['anthropic']:.2f}")


if __name__ == "__main__":
    main()
