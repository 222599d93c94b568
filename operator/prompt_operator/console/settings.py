"""What the console's application holds: its settings and the collaborators a
handler reaches through ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from .auth import Keys
from .service import PromptService


@dataclass(frozen=True)
class Settings:
    namespace: str
    context: str
    user: str
    # "host:port" values (lower case) the Host header may carry; never "any"
    allowed_hosts: frozenset[str]
    port: int
    prometheus: str | None = None


SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", PromptService)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
KEYS = web.AppKey("keys", Keys)
