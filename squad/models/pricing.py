"""Prices of Claude models (USD per million tokens) and the cost of one call.

Source: the model pricing table on platform.claude.com/docs/en/about-claude/pricing and the model
overview pages, Fable 5.2 from its launch price list (checked 2026-11-22). Cache writes use the
5-minute rate: squad only sets `{"type": "ephemeral"}` breakpoints, whose default TTL is 5 minutes.
Ids match by longest prefix, so dated ids (`claude-sonnet-4-5-20250929`) find their family row.
`settings.pricing` overrides or extends the table (`[pricing."claude-foo"] input = ...`). A model with no price
makes dollar budgets fail closed (squad.domain.usage.Limits); without them its calls cost 0 and are reported once
(a logged warning, and the Priced policy's journal event). Scripted and replayed calls are free: a known price of 0.

Claude on Bedrock and Vertex (`bedrock:<id>`, `vertex:<id>`) is priced per provider: an override names the model
with its prefix (`[pricing."bedrock:us.anthropic.claude-sonnet-4-5"]`, longest prefix wins, so one key can cover
dated ids); a first-party override (`claude-sonnet-4-5`) does not apply to them, because a provider's contract may
differ. Without an override, the provider id maps to its family row above (squad.models.providers.family_of) at the
list price, which Bedrock and Vertex share with the Anthropic API on global endpoints; from Sonnet 4.5 on, their
regional endpoints cost 10% more ("Global vs regional endpoints" on platform.claude.com's Bedrock and Vertex AI
pages): a Bedrock id without the `global.` profile prefix, a Vertex region other than `global`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from squad.config import Price, Settings
from squad.models.base import Usage
from squad.models.providers import family_of

log = logging.getLogger("squad.models")


def _p(inp: float, out: float, write_5m: float, write_1h: float, read: float) -> Price:
    return Price(input=inp, output=out, cache_write_5m=write_5m, cache_write_1h=write_1h, cache_read=read)


_OPUS_NEW = _p(5, 25, 6.25, 10, 0.50)
_OPUS_OLD = _p(15, 75, 18.75, 30, 1.50)
_SONNET = _p(3, 15, 3.75, 6, 0.30)

#: Built-in table, keyed by id prefix. Longest matching prefix wins.
PRICES: dict[str, Price] = {
    "claude-fable-5-2": _p(8, 40, 10.00, 16, 0.20),
    "claude-mythos-5-2": _p(8, 40, 10.00, 16, 0.20),
    "claude-fable-5-1": _p(10, 50, 12.50, 20, 0.25),
    "claude-fable-5": _p(10, 50, 12.50, 20, 1.00),
    "claude-mythos-5-1": _p(10, 50, 12.50, 20, 0.25),
    "claude-mythos-5": _p(10, 50, 12.50, 20, 1.00),
    "claude-opus-5-5": _p(4, 20, 5.00, 8, 0.20),
    "claude-opus-5": _OPUS_NEW,
    "claude-opus-4-8": _OPUS_NEW,
    "claude-opus-4-7": _OPUS_NEW,
    "claude-opus-4-6": _OPUS_NEW,
    "claude-opus-4-5": _OPUS_NEW,
    "claude-opus-4-1": _OPUS_OLD,
    "claude-opus-4": _OPUS_OLD,  # claude-opus-4-0, claude-opus-4-20250514
    "claude-3-opus": _OPUS_OLD,
    "claude-sonnet-5-5": _p(2, 10, 2.50, 4, 0.10),
    "claude-sonnet-5": _p(2, 10, 2.50, 4, 0.20),
    "claude-sonnet-4-6": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4": _SONNET,
    "claude-3-7-sonnet": _SONNET,
    # Haiku 5.5 has a higher band for prompts over 100k tokens; squad prices the standard band.
    "claude-haiku-5-5": _p(0.10, 0.50, 0.125, 0.20, 0.01),
    "claude-haiku-4-5": _p(1, 5, 1.25, 2, 0.10),
    "claude-3-5-haiku": _p(0.80, 4, 1.00, 1.6, 0.08),
    "claude-3-haiku": _p(0.25, 1.25, 0.30, 0.50, 0.03),
}

#: Price factor of a regional Bedrock or Vertex endpoint, from Sonnet 4.5 on.
REGIONAL_PREMIUM = 1.10
#: Families priced before global and regional endpoints existed: no regional premium.
_BEFORE_ENDPOINT_PRICING = frozenset(
    {"claude-opus-4-1", "claude-opus-4", "claude-3-opus", "claude-sonnet-4", "claude-3-7-sonnet"}
    | {"claude-3-5-haiku", "claude-3-haiku"}
)

#: What scripted and replayed calls cost.
FREE = _p(0, 0, 0, 0, 0)

#: How the model policies look a price up: model name -> its row, or None when no price is known.
PriceOf = Callable[[str], Price | None]

_warned: set[str] = set()


def price_list(settings: Settings | None = None, *, free: bool = False) -> PriceOf:
    """The prices the policies of one backend use: `lookup` in `settings`, or FREE for every model (scripted and
    replayed backends, whose responses may name the real model they were recorded from)."""
    if free:
        return lambda _model: FREE
    return lambda model: lookup(model, settings)


def lookup(model: str, settings: Settings | None = None) -> Price | None:
    """The price row for `model`: settings.pricing first, then the built-in table; longest prefix wins.

    A `bedrock:` / `vertex:` name is looked up in settings.pricing as it is, then as its first-party family in the
    built-in table, with the regional premium where it applies (see the module docstring).
    """
    if settings is not None and settings.pricing:
        key = _longest_prefix(model, settings.pricing)
        if key is not None:
            return settings.pricing[key]
    family = family_of(model)
    if family is None:
        return None
    family_id, regional = family
    key = _longest_prefix(family_id, PRICES)
    if key is None:
        return None
    row = PRICES[key]
    if regional and key not in _BEFORE_ENDPOINT_PRICING:
        row = Price(**{field: round(value * REGIONAL_PREMIUM, 6) for field, value in row.model_dump().items()})
    return row


def _longest_prefix(model: str, table: dict[str, Price]) -> str | None:
    if model in table:
        return model
    hits = [key for key in table if model.startswith(key)]
    return max(hits, key=len) if hits else None


def cost(row: Price, usage: Usage) -> float:
    """USD for `usage` at `row`: input, output, cache writes (5m rate) and cache reads apart."""
    return (
        usage.input_tokens * row.input
        + usage.output_tokens * row.output
        + usage.cache_creation_input_tokens * row.cache_write_5m
        + usage.cache_read_input_tokens * row.cache_read
    ) / 1_000_000


def price(model: str, usage: Usage, settings: Settings | None = None) -> float:
    """USD cost of one call; 0.0 (and one logged warning per model) when the model is unknown."""
    row = lookup(model, settings)
    if row is None:
        if model.startswith("scripted") or model in _warned:  # scripted and replayed calls are free
            return 0.0
        _warned.add(model)
        log.warning(
            'no price known for model %r: its cost counts as $0 (add [pricing."%s"] to squad.toml)', model, model
        )
        return 0.0
    return cost(row, usage)
