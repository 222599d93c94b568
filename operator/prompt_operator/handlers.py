"""kopf wiring only: settings, login, the controllers' start, and one event handler.

Handlers are a few lines each; they hand bodies to the Prompt controller. The
operator uses no kopf change-detection handlers (create/update/resume): those
need kopf's diff-base and progress storage, which cost an extra metadata
patch per edit and copy the spec (the whole prompt text) into an annotation.
Level-triggered reconciling from watch events needs neither, and no finalizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import kopf

from prompt_contract import hops, objects

from .config import OperatorConfig
from .controllers import prompts
from .controllers.carry import SignedRevisions
from .controllers.delivery import Delivery
from .controllers.prompts import PromptController
from .controllers.readiness import Readiness
from .controllers.signals import Signals
from .controllers.subscribers import Subscribers
from .inventory import Inventory
from .logs import about
from .runtime import kubeconfig
from .runtime.client import KubeApi
from .runtime.controller import Controller
from .runtime.kubeconfig import Access
from .runtime.leader import AlwaysLeader, LeaderElector, Leadership
from .signing import SigningKeys, signing_keys

logger = logging.getLogger(__name__)


@dataclass
class Controllers:
    """Everything the handlers share, created at startup and kept in kopf's memo."""

    api: KubeApi
    leader: Leadership
    inventory: Inventory
    prompts: PromptController
    signals: Signals
    tasks: list[asyncio.Task[Any]]
    signing_keys: SigningKeys | None = None  # None: --signing-secret ""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def connection_info(access: Access) -> kopf.ConnectionInfo:
    """kopf's login, from the credentials our own reader found (``runtime.kubeconfig``):
    kopf's watch and our client use one set of credentials, read one way."""
    return kopf.ConnectionInfo(
        server=access.server,
        ca_data=_pem(access.ca_pem),
        insecure=access.insecure,
        certificate_data=_pem(access.cert_pem),
        private_key_data=_pem(access.key_pem),
        token=access.token,
        username=access.username,
        password=access.password,
        default_namespace=access.namespace,
    )


def _pem(material: bytes | None) -> bytes | None:
    # kopf takes data that starts with the PEM header as PEM, anything else as base64.
    return material[material.find(b"-----BEGIN") :] if material else None


class NoDiffBase(kopf.DiffBaseStorage):
    """No "essence" of a Prompt to compare, and nothing stored on it.

    kopf deep-copies each object's whole body (status and managedFields too) on
    every event, to diff it for change-detection handlers. This operator has
    none (an event handler queues, the Prompt controller compares what it needs), so
    the copy only cost time: it was the largest part of taking in 10,000
    Prompts after a restart, once the status carried the revision history.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


# kopf retries a failed API request (its Prompt watch included) after each of
# these pauses, then gives up and stops the operator. Its default grows to 21 s,
# which is added to every edit after an API server restart; short pauses for
# about a minute in all see the server back within a second and give up as late.
KOPF_API_RETRIES = (0.2, 0.5, *(1.0,) * 60)


# Memory at a restart (bench/restart_memory.py, README). kopf lists every
# Prompt in one request unless told otherwise: with 10,000 Prompts that answer was
# 37 MB, held at once as bytes, as text and as 110 MB of parsed objects. In pages
# of 200 (about 0.8 MB) only a few pages are in memory at a time.
KOPF_LIST_PAGE = 200
# kopf keeps a worker per object alive this long after its last event, and the
# worker holds that event's whole body meanwhile (kopf's default is 5 s: after a
# restart that was every Prompt listed in the last 5 s, thousands of bodies). Our
# handler copies what a reconcile needs, so the worker may go almost at once; the
# next event of that Prompt starts a new one.
KOPF_WORKER_IDLE = 0.1


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo | None:
    # Asked again after a 401: a service account's token file is read anew.
    access = kubeconfig.find()
    return connection_info(access) if access else None


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    # Everything kopf might write carries our prefix. With only event and index
    # handlers, kopf writes no finalizer, progress or diff-base at all.
    settings.persistence.finalizer = f"{objects.PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=objects.PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.enabled = False  # Events are posted deliberately, see events.py
    settings.batching.batch_window = 0.001  # coalescing happens in the controllers' queues
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.chunk_size = KOPF_LIST_PAGE
    settings.queueing.idle_timeout = KOPF_WORKER_IDLE
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = KOPF_API_RETRIES
    if config.webhook_port:
        # The chart (or the test) creates the webhook configurations and their
        # certificate; the operator only serves, so it needs no write access to them.
        settings.admission.server = kopf.WebhookServer(
            addr="0.0.0.0",
            port=config.webhook_port,
            certfile=config.webhook_cert,
            pkeyfile=config.webhook_key,
        )
        settings.admission.managed = None


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo["config"]
    configure_kopf(settings, config)
    access = kubeconfig.find()
    if access is None:
        raise kopf.PermanentError(
            "no Kubernetes credentials: run in a pod with a service account, "
            "or pass --kubeconfig / set KUBECONFIG"
        )
    credentials = access.credentials()
    # Writes carry the replica's name, so the audit log tells the replicas apart.
    agent = f"prompt-operator/{config.lease.identity}"
    leader: Leadership = AlwaysLeader()
    if config.leader_elect:

        def lost() -> None:  # as controller-runtime: stop, and let the kubelet restart us
            memo["lost_leadership"] = True
            memo["stop"].set()

        leader = LeaderElector(KubeApi(credentials, user_agent=agent), config.lease, on_lost=lost)
    # The fence: once the lease may have passed to another replica, writes are refused.
    # and no write is awaited past the moment the Lease could pass on (leader.py).
    api = KubeApi(
        credentials, fence=leader.valid, write_budget=leader.write_budget, user_agent=agent
    )
    memo["controllers"] = build_controllers(api, leader, config)
    # The first decisions need to know which ConfigMaps exist already.
    await asyncio.wait_for(memo["controllers"].inventory.synced.wait(), timeout=120)


def build_controllers(api: KubeApi, leader: Leadership, config: OperatorConfig) -> Controllers:
    """The informers and the controllers on them, each started as a task."""
    inventory = Inventory(api, config.namespaces)
    subscribers = Subscribers(api, config.namespaces)
    keys = signing_keys(api, leader, config)
    signals = Signals(subscribers, config, SignedRevisions(keys))
    readiness = Readiness(api)
    delivery = Delivery(subscribers, signals, readiness, config)
    prompt_controller = PromptController(
        api,
        inventory,
        delivery,
        readiness,
        leader,
        clock=_utc_now,
        prometheus_url=config.prometheus_url or None,
    )
    # Only the leader's workers run; a standby's queues fill and its caches stay warm.
    runtime: list[Controller[Any]] = [
        Controller(
            "prompt",
            prompt_controller.reconcile,
            prompt_controller.queue,
            workers=config.workers,
            gates=(inventory.synced, leader.leading),
            log_fields=prompts.log_fields,
        ),
        Controller(
            "signal",
            signals.deliver,
            signals.queue,
            workers=config.signal_concurrency,  # the bound on signals in flight
            gates=(leader.leading,),
            log_fields=lambda pod: about(pod=pod),
        ),
        Controller(
            "delivery",
            delivery.refresh,
            delivery.queue,
            gates=(leader.leading,),
            log_fields=prompts.log_fields,
        ),
    ]
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(leader.run(), name="leader election"),
        loop.create_task(inventory.run(), name="configmap inventory"),
        loop.create_task(subscribers.run(), name="subscribed pods"),
        *(loop.create_task(c.run(), name=f"{c.name} controller") for c in runtime),
    ]
    if keys is not None:
        tasks.append(loop.create_task(keys.store.run(), name="signing keys"))
        tasks.append(loop.create_task(keys.publisher.run(), name="signing keys publisher"))
    return Controllers(api, leader, inventory, prompt_controller, signals, tasks, keys)


# How long the operator may take to stop once kopf begins its cleanup (after a
# SIGTERM or a lost Lease): a pod's grace period is 30 s, and a rollout waits for
# it. Past this the process ends anyway (the Lease, if not yet released, then
# passes to a standby when it expires).
SHUTDOWN_GRACE = 5.0
LEASE_RELEASE_TIMEOUT = 2.0


def _exit_after(seconds: float, code: Callable[[], int]) -> None:
    """End the process after ``seconds``, whatever still runs (a daemon timer)."""

    def end() -> None:
        logger.warning("still stopping after %.0f s; exiting now", seconds)
        logging.shutdown()
        os._exit(code())

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    _exit_after(SHUTDOWN_GRACE, lambda: 1 if memo.get("lost_leadership") else 0)
    # kopf waits for its threading stop flag in an executor thread and waits for
    # that task when it stops: after a SIGTERM, unset, it kept the process alive.
    memo["stop"].set()
    controllers: Controllers | None = memo.get("controllers")
    if controllers is None:
        return
    for task in controllers.tasks:
        task.cancel()
    for task in controllers.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    # Nothing of ours writes any more: hand the Lease over at once.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(controllers.leader.release(), LEASE_RELEASE_TIMEOUT)
    await controllers.signals.close()
    await controllers.api.close()


@kopf.on.event(objects.GROUP, objects.VERSION, objects.PLURAL)
async def prompt_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    # async on purpose: kopf runs plain functions in a thread pool, and the
    # Prompt controller's queue belongs to the event loop.
    controllers: Controllers = memo["controllers"]
    if hops.enabled():
        meta = body.get("metadata") or {}
        hops.mark(hops.SEEN, f"{meta.get('namespace')}/{meta.get('name')}")
    if event.get("type") == "DELETED":
        controllers.prompts.submit_deleted(body)
    else:
        controllers.prompts.submit(body)
