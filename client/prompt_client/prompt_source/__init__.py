"""``prompt_hot_reloading.prompt_source`` import paths, so switching is a change of
package name: ``from prompt_client.prompt_source.file_system_source import
FileSystemSource``."""

from ..registry import PromptSource
from ..sources import FileSystemSource

__all__ = ["FileSystemSource", "PromptSource"]
