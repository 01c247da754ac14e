"""The model layer: the `Model` protocol, its request/response types, and implementations.

Importing this package is cheap: the implementations (and the anthropic SDK behind AnthropicModel)
load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from squad.models.base import (
    ContentBlock,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    StreamCallback,
    SystemBlock,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)

if TYPE_CHECKING:
    from squad.models.anthropic import AnthropicModel
    from squad.models.clock import SYSTEM_CLOCK, Clock
    from squad.models.errors import FailoverError, TransientModelError
    from squad.models.governor import Permit, RateGovernor
    from squad.models.policies import (
        Budgeted,
        CircuitBreaker,
        CircuitBreaking,
        Fallback,
        Priced,
        RateLimited,
        Recorded,
        Recorder,
        Retrying,
    )
    from squad.models.pricing import price
    from squad.models.registry import ModelRuntime, create_model
    from squad.models.scripted import ScriptedModel
    from squad.models.spend import Reservation, SpendBook
    from squad.models.tokens import estimate_input_tokens

_POLICIES = "squad.models.policies"
_LAZY = {
    "AnthropicModel": "squad.models.anthropic",
    "Budgeted": _POLICIES,
    "CircuitBreaker": _POLICIES,
    "CircuitBreaking": _POLICIES,
    "Clock": "squad.models.clock",
    "FailoverError": "squad.models.errors",
    "Fallback": _POLICIES,
    "ModelRuntime": "squad.models.registry",
    "Permit": "squad.models.governor",
    "Priced": _POLICIES,
    "RateGovernor": "squad.models.governor",
    "RateLimited": _POLICIES,
    "Recorded": _POLICIES,
    "Recorder": _POLICIES,
    "Reservation": "squad.models.spend",
    "Retrying": _POLICIES,
    "SYSTEM_CLOCK": "squad.models.clock",
    "ScriptedModel": "squad.models.scripted",
    "SpendBook": "squad.models.spend",
    "TransientModelError": "squad.models.errors",
    "create_model": "squad.models.registry",
    "estimate_input_tokens": "squad.models.tokens",
    "price": "squad.models.pricing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'squad.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "SYSTEM_CLOCK",
    "AnthropicModel",
    "Budgeted",
    "CircuitBreaker",
    "CircuitBreaking",
    "Clock",
    "ContentBlock",
    "FailoverError",
    "Fallback",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelRuntime",
    "Permit",
    "Priced",
    "RateGovernor",
    "RateLimited",
    "Recorded",
    "Recorder",
    "Reservation",
    "Retrying",
    "ScriptedModel",
    "SpendBook",
    "StreamCallback",
    "SystemBlock",
    "TextBlock",
    "ToolResultBlock",
    "ToolSpec",
    "ToolUseBlock",
    "TransientModelError",
    "Usage",
    "create_model",
    "estimate_input_tokens",
    "price",
]
