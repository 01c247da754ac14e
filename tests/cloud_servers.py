"""Loopback servers speaking Claude's wire formats on Amazon Bedrock and Google Vertex AI, for tests.

Both reuse MessagesServer's scripting, recording and error injection (`Reply`, `script`, `requests`); only the
routing, the authentication and the framing differ, so the SDK's AsyncAnthropicBedrock / AsyncAnthropicVertex
run unchanged over real HTTP:

- BedrockServer: `POST /model/<model id>/invoke-with-response-stream` (and `/invoke`), the body without `model`
  and with `anthropic_version: bedrock-2023-05-31`. Every request's AWS Signature Version 4 is checked against
  the server's fake credentials by an implementation written here from the AWS specification (not botocore's),
  so a request that botocore signed wrongly, for another region or service, or whose body changed after
  signing, is refused with 403. The response is `application/vnd.amazon.eventstream`: each Messages event is
  the base64 `bytes` of a `chunk` event-stream message (prelude, string headers, payload, two CRC32s); errors
  inside the stream are `exception` messages (e.g. `throttlingException`); HTTP errors are Bedrock's JSON
  (`{"message": ...}` with an `x-amzn-ErrorType` header). A Bedrock API key (bearer) is accepted when set.
- VertexServer: `POST /v1/projects/<project>/locations/<region>/publishers/anthropic/models/<id>:streamRawPredict`
  (and `:rawPredict`), the body with `anthropic_version: vertex-2023-10-16`, a bearer token that the same
  server's OAuth endpoint (`POST /token`, refresh-token and service-account JWT grants) issued. Responses are
  Messages SSE; HTTP errors are Google's JSON (`{"error": {"code", "message", "status"}}`) when the scripted
  error type is a Google status (RESOURCE_EXHAUSTED), else Anthropic's (passed through by Vertex).
  `service_account_file` writes a service-account key whose `token_uri` is this server; `adc_file` writes user
  credentials as `gcloud auth application-default login` does (google-auth always refreshes those at Google's own
  token endpoint, so they serve only where nothing is refreshed, e.g. `squad doctor`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from messages_server import Call, MessagesServer, RecordedRequest, _Handler

# Fake but well-formed AWS credentials (the shapes of real ones; never valid anywhere).
AWS_ACCESS_KEY = "AKIAIOSFODNN7LOOPBACK"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLOOPBACKKEY"
AWS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEloopback//////////wEaCXVzLWVhc3QtMSJGMEQCIFakeSessionToken="
AWS_REGION = "us-east-1"


# --------------------------------------------------------------------------------------------------
# AWS Signature Version 4, checked from the specification (docs.aws.amazon.com/IAM/latest/UserGuide/
# reference_sigv-create-signed-request.html)

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def sigv4_problem(
    rec: RecordedRequest, *, access_key: str, secret_key: str, session_token: str | None, region: str, service: str
) -> str | None:
    """Why `rec` is not validly signed for (access_key, region, service), or None when it is."""
    m = _AUTH.fullmatch(rec.headers.get("authorization", ""))
    if m is None:
        return "the request has no AWS4-HMAC-SHA256 Authorization header"
    if m["key"] != access_key:
        return f"the security token included in the request is invalid (access key {m['key']!r})"
    if (m["region"], m["service"]) != (region, service):
        return f"credential should be scoped to {region}/{service}, not {m['region']}/{m['service']}"
    amz_date = rec.headers.get("x-amz-date", "")
    if not amz_date.startswith(m["day"]):
        return "x-amz-date does not match the credential scope"
    names = m["signed"].split(";")
    required = ["host", "x-amz-date"] + (["x-amz-security-token"] if session_token else [])
    unsigned = [n for n in required if n not in names]
    if unsigned:
        return f"{', '.join(unsigned)} must be signed"
    if session_token and rec.headers.get("x-amz-security-token") != session_token:
        return "the security token included in the request is invalid"
    path, _, query = rec.path.partition("?")
    canonical = "\n".join(
        [
            rec.method,
            quote(path, safe="/~"),  # non-S3 services: the (already encoded) path is encoded once more
            "&".join(sorted(query.split("&"))) if query else "",
            "".join(f"{n}:{' '.join(rec.headers.get(n, '').split())}\n" for n in names),
            m["signed"],
            hashlib.sha256(rec.raw).hexdigest(),
        ]
    )
    scope = f"{m['day']}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("AWS4" + secret_key).encode()
    for part in (m["day"], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, m["signature"]):
        return "the request signature we calculated does not match the signature you provided"
    return None


# --------------------------------------------------------------------------------------------------
# AWS event stream framing (application/vnd.amazon.eventstream)


def event_stream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: total length, headers length, prelude CRC32, string headers (type 7),
    payload, message CRC32; all integers big-endian."""
    encoded = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


_BEDROCK_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


class _BedrockHandler(_Handler):
    stream_content_type = "application/vnd.amazon.eventstream"
    request_id_header = "x-amzn-RequestId"
    _ROUTE = re.compile(r"/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)")

    def _accept(self, rec: RecordedRequest) -> Call | None:
        app = self.server.app
        assert isinstance(app, BedrockServer)
        route = self._ROUTE.fullmatch(rec.path.split("?")[0])
        if route is None:
            return self._refuse(rec, 404, "UnknownOperationException", f"no route {rec.path}")
        bearer = rec.headers.get("authorization", "").removeprefix("Bearer ")
        if app.bedrock_api_key is None or bearer != app.bedrock_api_key:
            problem = sigv4_problem(
                rec,
                access_key=app.access_key,
                secret_key=app.secret_key,
                session_token=app.session_token,
                region=app.region,
                service="bedrock",
            )
            if problem:
                return self._refuse(rec, 403, "UnrecognizedClientException", problem)
        body = rec.body
        if not isinstance(body, dict) or "messages" not in body or "model" in body:
            return self._refuse(rec, 400, "ValidationException", "malformed input request: messages, and no model")
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            return self._refuse(rec, 400, "ValidationException", "anthropic_version must be bedrock-2023-05-31")
        model = unquote(route["model"])
        if app.models is not None and model not in app.models:
            return self._refuse(rec, 400, "ValidationException", "The provided model identifier is invalid.")
        return Call(model, route["op"] == "invoke-with-response-stream")

    def _error(self, status: int, error_type: str, message: str, extra: dict[str, str] | None = None) -> None:
        app = self.server.app
        assert isinstance(app, BedrockServer)
        if app.echo_credentials:  # a hostile (or careless) endpoint: the credentials it was sent, in the message
            message += f" [sent {self.headers.get('authorization')} {self.headers.get('x-amz-security-token')}]"
        kind = (
            error_type if error_type.endswith("Exception") else _BEDROCK_ERRORS.get(status, "InternalServerException")
        )
        headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/", **(extra or {})}
        self._json(status, {"message": message}, headers)

    def _event(self, name: str, data: dict[str, Any]) -> None:
        if name == "message_stop":  # Bedrock appends its own metrics to the last event
            data = {**data, "amazon-bedrock-invocationMetrics": {"inputTokenCount": 1, "outputTokenCount": 1}}
        payload = json.dumps({"bytes": base64.b64encode(json.dumps(data).encode()).decode(), "p": "abcdefgh"})
        headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
        self._chunk(event_stream_message(headers, payload.encode()))

    def _stream_error(self, error_type: str, message: str) -> None:
        headers = {":exception-type": error_type, ":content-type": "application/json", ":message-type": "exception"}
        self._chunk(event_stream_message(headers, json.dumps({"message": message}).encode()))


class BedrockServer(MessagesServer):
    """Loopback Bedrock runtime for Claude. Point the SDK at it with ANTHROPIC_BEDROCK_BASE_URL = `url` and the
    fake credentials of `aws_env()`; `Reply.stream_error` takes Bedrock's exception names (throttlingException).
    With `echo_credentials`, every error message repeats the Authorization and session-token headers it got."""

    handler = _BedrockHandler

    def __init__(
        self,
        *,
        region: str = AWS_REGION,
        access_key: str = AWS_ACCESS_KEY,
        secret_key: str = AWS_SECRET_KEY,
        session_token: str | None = AWS_SESSION_TOKEN,
        bedrock_api_key: str | None = None,
        models: set[str] | None = None,
        echo_credentials: bool = False,
    ) -> None:
        super().__init__(models=models)
        self.echo_credentials = echo_credentials
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.bedrock_api_key = bedrock_api_key

    def aws_env(self) -> dict[str, str]:
        """The environment the AWS credential chain reads: region, key, secret, session token, and this endpoint."""
        env = {
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "ANTHROPIC_BEDROCK_BASE_URL": self.url,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


# --------------------------------------------------------------------------------------------------
# Google Vertex AI

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class _VertexHandler(_Handler):
    _ROUTE = re.compile(
        r"/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/anthropic/models/"
        r"(?P<model>[^/:]+):(?P<verb>streamRawPredict|rawPredict)"
    )

    def do_POST(self) -> None:
        if self.path == "/token":
            return self._token()
        return super().do_POST()

    def _token(self) -> None:
        """The OAuth 2.0 token endpoint: a refresh-token grant (user ADC) or a JWT-bearer grant (service account)."""
        app = self.server.app
        assert isinstance(app, VertexServer)
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        app.token_requests.append(form)
        grant = form.get("grant_type", "")
        if grant == "refresh_token":
            ok = form.get("refresh_token") == app.refresh_token and form.get("client_secret") == app.client_secret
        else:
            ok = grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" and app.jwt_ok(form.get("assertion", ""))
        if not ok:
            return self._json(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        token = app.issue_token()
        self._json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _accept(self, rec: RecordedRequest) -> Call | None:
        app = self.server.app
        assert isinstance(app, VertexServer)
        route = self._ROUTE.fullmatch(rec.path.split("?")[0])
        if route is None or (route["project"], route["region"]) != (app.project, app.region):
            return self._refuse(rec, 404, "NOT_FOUND", f"Publisher Model `{rec.path}` not found.")
        token = rec.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in app.issued:
            return self._refuse(rec, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        body = rec.body
        if not isinstance(body, dict) or "messages" not in body or "model" in body:
            return self._refuse(rec, 400, "INVALID_ARGUMENT", "messages are required; the model is in the URL")
        if body.get("anthropic_version") != "vertex-2023-10-16":
            return self._refuse(rec, 400, "INVALID_ARGUMENT", "anthropic_version must be vertex-2023-10-16")
        if app.models is not None and route["model"] not in app.models:
            return self._refuse(rec, 404, "NOT_FOUND", f"Publisher Model `{route['model']}` not found.")
        return Call(route["model"], route["verb"] == "streamRawPredict" and bool(body.get("stream")))

    def _error(self, status: int, error_type: str, message: str, extra: dict[str, str] | None = None) -> None:
        if error_type.isupper():  # Google's own errors (quota, auth, routing)
            payload = {"error": {"code": status, "message": message, "status": error_type}}
            return self._json(status, payload, extra)
        return super()._error(status, error_type, message, extra)  # Claude's errors, passed through


class VertexServer(MessagesServer):
    """Loopback Vertex AI endpoint for Claude plus its OAuth token endpoint. Point the SDK at it with
    ANTHROPIC_VERTEX_BASE_URL = `url + "/v1"`, CLOUD_ML_REGION, and GOOGLE_APPLICATION_CREDENTIALS =
    `service_account_file(...)`. Each `service_account_file` call makes a new key, and only the newest is trusted."""

    handler = _VertexHandler

    def __init__(
        self, *, project: str = "loopback-project", region: str = "us-east5", models: set[str] | None = None
    ) -> None:
        super().__init__(models=models)
        self.project = project
        self.region = region
        self.client_secret = "loopback-client-secret"
        self.refresh_token = "1//loopback-refresh-token"
        self.issued: list[str] = []
        self.token_requests: list[dict[str, str]] = []
        self._public_key: Any = None
        self._tokens_lock = threading.Lock()

    def issue_token(self) -> str:
        with self._tokens_lock:
            token = f"ya29.loopback-access-token-{len(self.issued) + 1}"
            self.issued.append(token)
            return token

    def adc_file(self, folder: Path) -> Path:
        """User credentials as `gcloud auth application-default login` writes them (no project inside)."""
        path = folder / "application_default_credentials.json"
        info = {
            "type": "authorized_user",
            "client_id": "loopback.apps.googleusercontent.com",
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "token_uri": f"{self.url}/token",
        }
        path.write_text(json.dumps(info))
        return path

    def service_account_file(self, folder: Path) -> Path:
        """A service-account key file (a fresh RSA key; the project inside), whose JWT grants this server checks."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "loopback-key-1",
            "private_key": pem,
            "client_email": f"squad@{self.project}.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{self.url}/token",
        }
        path = folder / "service-account.json"
        path.write_text(json.dumps(info))
        return path

    def jwt_ok(self, assertion: str) -> bool:
        """A service account's RS256 JWT grant, signed by the key of `service_account_file`, not expired."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if self._public_key is None or assertion.count(".") != 2:
            return False
        head, claims, signature = assertion.split(".")

        def unb64(part: str) -> bytes:
            return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

        try:
            self._public_key.verify(unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        payload = json.loads(unb64(claims))
        return (
            payload.get("iss") == f"squad@{self.project}.iam.gserviceaccount.com"
            and payload.get("aud")
            == "https://oauth2.googleapis.com/token"  # google-auth's audience, whatever token_uri
            and payload.get("exp", 0) > time.time()
        )
