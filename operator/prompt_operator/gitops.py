"""Whether a GitOps tool owns a Prompt, so a direct change is drift its next sync undoes.

The CLI's rollback warns on it and the console refuses to write; both read
the same marks. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Labels and annotations GitOps tools put on what they apply.
GITOPS_MARKS = {
    "argocd.argoproj.io/tracking-id": "Argo CD",
    "argocd.argoproj.io/instance": "Argo CD",
    "kustomize.toolkit.fluxcd.io/name": "Flux",
    "helm.toolkit.fluxcd.io/name": "Flux",
    "app.kubernetes.io/managed-by": "",  # "Helm" and others: named by its value
}

# Field managers of GitOps controllers: a Prompt whose spec one of them owns is
# changed in git (a direct edit is drift that the next sync undoes).
GITOPS_MANAGERS = {
    "argocd-controller": "Argo CD",
    "argocd-application-controller": "Argo CD",
    "kustomize-controller": "Flux",
    "helm-controller": "Flux",
    "flux-client-side-apply": "Flux",
}


def gitops_owner(prompt: Mapping[str, Any]) -> str | None:
    """The tool whose labels or annotations mark the Prompt as its own, or None."""
    meta = prompt.get("metadata") or {}
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    for key, tool in GITOPS_MARKS.items():
        if key in marks:
            return tool or str(marks[key])
    return None


def spec_managers(obj: Mapping[str, Any]) -> list[str]:
    """Field managers that own something under spec."""
    out = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        if "f:spec" in fields and entry.get("manager"):
            out.append(str(entry["manager"]))
    return out


def gitops_manager(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(tool, field manager) of the GitOps controller that owns the spec, or None."""
    for manager in spec_managers(obj):
        tool = GITOPS_MANAGERS.get(manager)
        if tool:
            return tool, manager
    return None
