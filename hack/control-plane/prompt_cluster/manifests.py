"""Render the static install manifest (deploy/install.yaml) from the Helm chart.

For people who don't use Helm: `kubectl apply --server-side -f deploy/install.yaml`
installs the same objects as `helm install prompt-operator charts/prompt-operator
-n prompt-system`. A test renders it again and compares, so it never drifts.

The image comes from one place, the chart: ``image.repository`` in its
values.yaml and its ``appVersion``. ``--image REPOSITORY:TAG`` (``make
manifests IMAGE=...``, ``make dist IMAGE=...``) renders it for another image.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .build import ensure_binaries

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "prompt-system"
HEADER = f"""\
# prompt-operator, rendered from charts/prompt-operator with default values
# (`make manifests`), without the admission webhooks (they need a certificate,
# which Helm generates). Install: kubectl apply --server-side -f deploy/install.yaml
# The image is the chart's image.repository at its appVersion; for your own
# image: `make manifests IMAGE=registry.example.com/prompt-operator:TAG`.
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
"""


def render(helm: Path | None = None, image: str | None = None) -> str:
    """The manifest; ``image`` (``REPOSITORY:TAG``) replaces the chart's default."""
    helm = helm or ensure_binaries().helm
    overrides: list[str] = []
    if image:
        from .release import split_image

        repository, tag = split_image(image)
        overrides = ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]
    out = subprocess.run(
        [
            str(helm),
            "template",
            "prompt-operator",
            str(REPO / "charts" / "prompt-operator"),
            "--namespace",
            NAMESPACE,
            # Webhooks need a certificate, which Helm generates at install time; a
            # static file cannot carry one. Use the chart for admission checks and
            # sidecar injection.
            "--set",
            "webhooks.enabled=false",
            *overrides,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # The helm test hook only makes sense inside a Helm release.
    docs = [d.strip("\n") for d in ("\n" + out).split("\n---\n")]
    docs = [d for d in docs if d.strip() and "helm.sh/hook:" not in d]
    return HEADER + "---\n" + "\n---\n".join(docs) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--image", default="", help="REPOSITORY:TAG (default: the chart's)")
    sys.stdout.write(render(image=parser.parse_args().image or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
