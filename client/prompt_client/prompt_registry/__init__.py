"""Same import path as ``prompt_hot_reloading.prompt_registry``."""

from .. import create_prompt_registry
from ..registry import PromptRegistry

__all__ = ["PromptRegistry", "create_prompt_registry"]
