from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_client import PromptRegistry

from .support import Writer


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    return directory


@pytest.fixture
def writer(prompt_dir: Path) -> Writer:
    return Writer(prompt_dir)


@pytest.fixture
def registry(prompt_dir: Path) -> Iterator[PromptRegistry]:
    reg = PromptRegistry(str(prompt_dir))
    yield reg
    reg.close()
