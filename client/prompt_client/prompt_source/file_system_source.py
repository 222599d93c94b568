"""Same import path as ``prompt_hot_reloading.prompt_source.file_system_source``."""

from ..sources import FileSystemSource

__all__ = ["FileSystemSource"]
