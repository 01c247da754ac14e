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
    from squad.models.budget import Budget, Spend
    from squad.models.governor import Permit, RateGovernor
    from squad.models.pricing import price
    from squad.models.registry import CircuitBreaker, ManagedModel, ModelRuntime, create_model
    from squad.models.retry import TransientModelError
    from squad.models.scripted import ScriptedModel
    from squad.models.tokens import estimate_input_tokens

_LAZY = {
    "AnthropicModel": "squad.models.anthropic",
    "Budget": "squad.models.budget",
    "Spend": "squad.models.budget",
    "Permit": "squad.models.governor",
    "RateGovernor": "squad.models.governor",
    "price": "squad.models.pricing",
    "CircuitBreaker": "squad.models.registry",
    "ManagedModel": "squad.models.registry",
    "ModelRuntime": "squad.models.registry",
    "create_model": "squad.models.registry",
    "TransientModelError": "squad.models.retry",
    "ScriptedModel": "squad.models.scripted",
    "estimate_input_tokens": "squad.models.tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'squad.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AnthropicModel",
    "Budget",
    "CircuitBreaker",
    "ContentBlock",
    "ManagedModel",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelRuntime",
    "Permit",
    "RateGovernor",
    "ScriptedModel",
    "Spend",
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
