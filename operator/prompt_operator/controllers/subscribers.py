"""The subscribed pods and which Prompts each one selects.

Pods opt in with the ``prompts.dev/subscribe=true`` label; a label-selected
informer (kopf's watches carry no selector) keeps a small record per pod that
can be signalled: its address and its selector on Prompts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prompt_contract import objects
from prompt_contract.selector import Selector, SelectorError, parse_selector

from .. import metrics
from ..logs import about
from ..model import Prompt, PromptRef
from ..runtime.client import KubeApi
from ..runtime.informer import Informer, Key, collection_paths

logger = logging.getLogger(__name__)

POD_SELECTOR = f"{objects.SUBSCRIBE_LABEL}=true"
PodKey = Key  # (namespace, pod name)


@dataclass(frozen=True)
class Subscriber:
    namespace: str
    name: str
    uid: str
    address: str  # "ip:port"
    selector: Selector


def subscriber_from_pod(pod: Mapping[str, Any]) -> Subscriber | None:
    """The subscription a Pod declares, or None when it cannot be signalled."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork"):
        return None  # never signal pods on the host network
    ip = status.get("podIP")
    if not ip or status.get("phase") in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
        return None
    annotations = meta.get("annotations") or {}
    try:
        port = int(annotations.get(objects.PORT_ANNOTATION) or objects.DEFAULT_PORT)
        selector = parse_selector(annotations.get(objects.SELECTOR_ANNOTATION))
    except (ValueError, SelectorError) as exc:
        logger.warning(
            "Pod %s/%s: bad subscription annotations: %s",
            meta.get("namespace"),
            meta.get("name"),
            exc,
            extra=about(pod=(str(meta.get("namespace")), str(meta.get("name")))),
        )
        return None
    if not 0 < port < 65536:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return Subscriber(
        str(meta.get("namespace")),
        str(meta.get("name")),
        str(meta.get("uid")),
        f"{host}:{port}",
        selector,
    )


class Subscribers:
    def __init__(self, api: KubeApi, namespaces: Sequence[str]) -> None:
        self._informer: Informer[Subscriber] = Informer(
            api,
            collection_paths("v1", "pods", namespaces),
            subscriber_from_pod,
            what="Pod",
            label_selector=POD_SELECTOR,
            on_change=self._gauge,
        )

    @property
    def synced(self) -> asyncio.Event:
        return self._informer.synced

    def add_handler(
        self, on_change: Callable[[PodKey, Subscriber | None, Subscriber | None], None]
    ) -> None:
        """Call ``on_change(pod, before, after)`` when a pod comes, goes or changes."""
        self._informer.add_handler(on_change)

    def get(self, pod: PodKey) -> Subscriber | None:
        return self._informer.get(pod)

    def store(self, sub: Subscriber) -> None:
        """Add a pod as if the watch had seen it (for tests of what builds on this)."""
        self._informer.store((sub.namespace, sub.name), sub)

    def matching(self, ref: PromptRef, labels: Mapping[str, str]) -> list[PodKey]:
        """The pods in the Prompt's namespace whose selector picks ``labels``."""
        return [
            (sub.namespace, sub.name)
            for sub in self._informer.values()
            if sub.namespace == ref.namespace and sub.selector.matches(labels)
        ]

    def matching_pods(self, prompt: Prompt) -> list[str]:
        """Names of the subscribed pods that select ``prompt``."""
        return [name for _, name in self.matching(prompt.ref, prompt.labels)]

    async def run(self) -> None:
        await self._informer.run()

    def _gauge(self, pod: PodKey, before: Subscriber | None, after: Subscriber | None) -> None:
        metrics.SUBSCRIBED_PODS.set(len(self._informer))
