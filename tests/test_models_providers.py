"""Model names -> providers, the price family of a provider's model id, and keeping credentials out of messages."""

from __future__ import annotations

import pytest

from squad.config import Price, Settings
from squad.errors import ConfigError, ModelError
from squad.models import ModelRuntime, create_model
from squad.models.pricing import PRICES, lookup
from squad.models.providers import _require, family_of, redact, resolve


@pytest.mark.parametrize(
    ("name", "provider", "model_id"),
    [
        ("claude-sonnet-5-5", "anthropic", "claude-sonnet-5-5"),
        (
            "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "bedrock:arn:aws:bedrock:us-east-1:1:inference-profile/x",
            "bedrock",
            "arn:aws:bedrock:us-east-1:1:inference-profile/x",
        ),
        ("vertex:claude-sonnet-4-5@20250929", "vertex", "claude-sonnet-4-5@20250929"),
    ],
)
def test_names_pick_the_provider_and_the_id_sent(name: str, provider: str, model_id: str) -> None:
    found, sent = resolve(name)
    assert (found.key, sent) == (provider, model_id)


@pytest.mark.parametrize("name", ["bedrock:", "vertex:  ", "gpt-4", "sonnet"])
def test_bad_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        resolve(name)


def test_create_model_names_the_cloud_forms_for_an_unknown_name() -> None:
    settings = Settings()
    with pytest.raises(ConfigError, match=r"`bedrock:<model id>`, `vertex:<model id>`"):
        create_model("gpt-4", settings=settings, runtime=ModelRuntime.from_settings(settings))
    with pytest.raises(ConfigError, match="needs a model id after the colon"):
        create_model("bedrock:", settings=settings, runtime=ModelRuntime.from_settings(settings))


@pytest.mark.parametrize(
    ("name", "family", "regional"),
    [
        ("bedrock:anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929-v1:0", True),
        ("bedrock:us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1-20250805-v1:0", True),
        ("bedrock:global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001-v1:0", False),
        (
            "bedrock:arn:aws:bedrock:eu-west-1:1:inference-profile/eu.anthropic.claude-sonnet-4-6",
            "claude-sonnet-4-6",
            True,
        ),
        ("claude-sonnet-5-5", "claude-sonnet-5-5", False),
    ],
)
def test_the_family_of_a_provider_id(name: str, family: str, regional: bool) -> None:
    assert family_of(name) == (family, regional)


@pytest.mark.parametrize(
    "name", ["bedrock:arn:aws:bedrock:us-east-1:1:application-inference-profile/a1b2", "bedrock:meta.llama3-70b"]
)
def test_ids_without_a_claude_family_have_no_price(name: str) -> None:
    assert family_of(name) is None and lookup(name) is None


def test_vertex_is_regional_unless_the_region_is_global(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west1")
    assert family_of("vertex:claude-sonnet-4-5@20250929") == ("claude-sonnet-4-5@20250929", True)
    monkeypatch.setenv("CLOUD_ML_REGION", "global")
    assert family_of("vertex:claude-sonnet-4-5@20250929") == ("claude-sonnet-4-5@20250929", False)


def test_regional_premium_applies_from_sonnet_4_5_on_only() -> None:
    sonnet = PRICES["claude-sonnet-4-5"]
    regional = lookup("bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert regional is not None
    assert (regional.input, regional.output, regional.cache_write_5m, regional.cache_read) == pytest.approx(
        (sonnet.input * 1.1, sonnet.output * 1.1, sonnet.cache_write_5m * 1.1, sonnet.cache_read * 1.1)
    )
    assert lookup("bedrock:global.anthropic.claude-sonnet-4-5-20250929-v1:0") == sonnet
    assert lookup("bedrock:us.anthropic.claude-opus-4-1-20250805-v1:0") == PRICES["claude-opus-4-1"]  # older: none
    assert lookup("bedrock:anthropic.claude-3-5-haiku-20241022-v1:0") == PRICES["claude-3-5-haiku"]


def test_overrides_name_the_provider() -> None:
    mine = Price(input=1, output=2, cache_write_5m=1.25, cache_write_1h=2, cache_read=0.1)
    first_party = Price(input=9, output=9, cache_write_5m=9, cache_write_1h=9, cache_read=9)
    settings = Settings(pricing={"vertex:claude-sonnet-4-5": mine, "claude-sonnet-4-5": first_party})
    assert lookup("vertex:claude-sonnet-4-5@20250929", settings) == mine
    assert lookup("claude-sonnet-4-5-20250929", settings) == first_party
    assert lookup("bedrock:global.anthropic.claude-sonnet-4-5-20250929-v1:0", settings) == PRICES["claude-sonnet-4-5"]


def test_redact_removes_env_credentials_and_what_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/secret")
    sent = {
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEYID0001/20261122/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "ab12" * 16,
        "x-amz-security-token": "IQoJb3JpZ2luX2Vj/session+token==",
    }
    text = (
        "denied: key AKIAEXAMPLEKEYID0001 sig " + "ab12" * 16 + " token IQoJb3JpZ2luX2Vj/session+token== "
        "secret wJalrXUtnFEMI/K7MDENG/secret in us-east-1"
    )
    shown = redact(text, sent)
    assert shown == "denied: key [redacted] sig [redacted] token [redacted] secret [redacted] in us-east-1"
    bearer = {"authorization": "Bearer ya29.a0AfB_byC-loopback-token"}
    assert redact("got ya29.a0AfB_byC-loopback-token, refused", bearer) == "got [redacted], refused"


def test_a_missing_extra_names_the_install_command() -> None:
    with pytest.raises(ModelError, match="need squad_no_such_module") as caught:
        _require("bedrock", "squad_no_such_module")
    assert caught.value.hint == "pip install 'squad-agents[bedrock]'"
