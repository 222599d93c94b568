"""The console's aiohttp application: its routes, and serving it.

The guards (session, CSRF, Host check, names in URLs, security headers, the
query-free access log) are ``security``'s; the pages are ``pages``' and
``edit``'s, the live view ``stream``'s; every cluster operation is the
``service``'s. docs/console/security.md says it for users.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from . import edit, pages, stream
from .auth import Keys
from .rendering import environment
from .security import AccessLogger, api_errors, guard
from .service import PromptService
from .settings import KEYS, SERVICE, SETTINGS, TEMPLATES, Settings


def make_app(service: PromptService, settings: Settings, keys: Keys) -> web.Application:
    app = web.Application(middlewares=[guard, api_errors], client_max_size=4 * 1024 * 1024)
    app[SETTINGS] = settings
    app[SERVICE] = service
    app[TEMPLATES] = environment()
    app[KEYS] = keys
    static = resources.files(__package__).joinpath("static")
    one = "/ns/{ns}/prompts/{name}"
    app.router.add_get("/", pages.index)
    app.router.add_static("/static/", str(static), append_version=True)
    app.router.add_get("/ns/{ns}/prompts", pages.prompt_list)
    app.router.add_get("/ns/{ns}/prompts/stream", stream.prompt_stream)
    app.router.add_get(one, pages.prompt_page)
    app.router.add_get(one + "/preview", pages.preview_fragment)
    app.router.add_get(one + "/revisions", pages.revisions_page)
    app.router.add_get(one + "/rollback", pages.rollback)
    app.router.add_post(one + "/rollback", pages.rollback)
    app.router.add_post(one + "/rollout", pages.rollout_action)
    app.router.add_get(one + "/edit", edit.edit_page)
    app.router.add_post(one + "/edit", edit.edit_submit)
    app.router.add_post(one + "/check", edit.edit_check)

    async def end_streams(_: web.Application) -> None:
        await service.streams.close()  # live views end, so shutting down waits for nothing

    async def close(_: web.Application) -> None:
        await service.close()

    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(close)
    return app


async def start(app: web.Application, address: str, port: int) -> web.AppRunner:
    """Serve ``app`` on ``address:port`` with the query-free access log."""
    # A request still running at shutdown gets 1 s (a diff is bounded well below it).
    runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
