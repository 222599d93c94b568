"""Same import path as ``prompt_hot_reloading.prompt_source.prompt_source``."""

from ..registry import PromptSource

__all__ = ["PromptSource"]
