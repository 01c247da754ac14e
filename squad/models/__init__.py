"""The model layer: the `Model` protocol, its request/response types, and implementations."""

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

__all__ = [
    "ContentBlock",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "StreamCallback",
    "SystemBlock",
    "TextBlock",
    "ToolResultBlock",
    "ToolSpec",
    "ToolUseBlock",
    "Usage",
]
