"""Container images for the real node, built on this machine and cached by content.

* the pause image: the static ``pause`` binary packed by ``umoci``;
* a Python base image made from Debian packages with ``mmdebstrap`` (no
  registry needed), standing in for ``python:3.12-slim``;
* the product image and the demo app's image: their Dockerfiles built by
  ``buildah bud`` (vfs storage, chroot isolation) with that base as the
  ``BASE_IMAGE`` build argument.

Each result is an OCI archive under ``$XDG_CACHE_HOME/prompt-operator/images``
whose name carries a hash of everything that went into it, so a second run
rebuilds nothing and a changed source file builds anew.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from . import node
from .build import PAUSE_VERSION, cache_root
from .release import default_image, read_version

REPO = Path(__file__).resolve().parents[3]
PAUSE_BASE_NAME = "localhost/prompt-cluster/pause"
OPERATOR_IMAGE = "localhost/prompt-operator"
DEMO_APP_IMAGE = "localhost/prompt-demo-app"
# Names the node also knows the images by: the chart's default image (the
# release's, ghcr.io/...:<VERSION>), so `helm install` needs no image values
# and pulls nothing, and a stable name for the demo app.
CHART_DEFAULT_IMAGE = default_image()
DEMO_APP_REF = "localhost/prompt-demo-app:dev"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What python:3.12-slim gives the Dockerfile and the chart's test pod:
# Python with pip, also as `python`.
BASE_PACKAGES = ("python3", "python3-pip", "python-is-python3")
# What the product image is made of (the Dockerfile's COPY lines).
OPERATOR_SOURCES = (
    "Dockerfile",
    "pyproject.toml",
    "LICENSE",
    "operator",
    "sidecar",
    "client",
    "contract",
    "crds",
)
DEMO_SOURCES = ("hack/demo/Dockerfile", "hack/demo/app.py", "client", "contract")


class ImageError(RuntimeError):
    """An image could not be built; the message says what failed."""


def images_dir() -> Path:
    return cache_root().parent / "images"


def _log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def _run(args: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(
        args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise ImageError(f"{what} failed ({' '.join(args[:3])} ...):\n{result.stdout[-4000:]}")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ImageError(
            f"`{tool}` is not installed; `make system-packages` installs the Debian "
            "packages the node and the image build need"
        )
    return path


def _publish(staging: Path, dest: Path, stale: str = "") -> Path:
    """Move a finished archive into place at once: a half-written one never counts.
    Archives matching the glob ``stale`` (older builds of the same image) go."""
    staging.rename(dest)
    if stale:
        for old in dest.parent.glob(stale):
            if old != dest:
                old.unlink(missing_ok=True)
    return dest


def _tree_hash(paths: Iterable[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(REPO).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc") or ".egg-info" in rel:
                continue
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def pause_archive(pause_binary: Path) -> Path:
    """The pause image as an OCI archive (tag ``PAUSE_VERSION``)."""
    dest = images_dir() / f"pause-{PAUSE_VERSION}.tar"
    if dest.is_file():
        return dest
    umoci = _need("umoci")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        layout, bundle = Path(tmp) / "layout", Path(tmp) / "bundle"
        ref = f"{layout}:{PAUSE_VERSION}"
        _run([umoci, "init", "--layout", str(layout)], "umoci init")
        _run([umoci, "new", "--image", ref], "umoci new")
        _run([umoci, "unpack", "--image", ref, str(bundle)], "umoci unpack")
        shutil.copy2(pause_binary, bundle / "rootfs" / "pause")
        _run([umoci, "repack", "--image", ref, str(bundle)], "umoci repack")
        _run(
            [
                umoci,
                "config",
                "--image",
                ref,
                "--config.entrypoint",
                "/pause",
                "--config.user",
                "65535:65535",
            ],
            "umoci config",
        )
        _run([umoci, "gc", "--layout", str(layout)], "umoci gc")
        staging = Path(tmp) / "pause.tar"
        _run(["tar", "-C", str(layout), "-cf", str(staging), "."], "tar pause image")
        return _publish(staging, dest)


class Builder:
    """buildah with its own vfs store under the image cache.

    vfs: overlay mounts inside this sandbox are not needed and not assumed;
    chroot isolation: buildah runs the Dockerfile's RUN steps without a new
    network namespace, with the host's resolver and the host's pip
    configuration and CA bundle mounted (the machine reaches PyPI through an
    egress proxy with its own CA).
    """

    def __init__(self) -> None:
        self.buildah = _need("buildah")
        self.root = images_dir() / "buildah"

    def _cmd(self, *args: str) -> list[str]:
        return [
            self.buildah,
            "--storage-driver=vfs",
            f"--root={self.root / 'storage'}",
            f"--runroot={self.root / 'run'}",
            *args,
        ]

    def _host_mounts(self) -> list[str]:
        mounts = []
        for path in ("/etc/pip.conf", "/etc/ssl/certs"):
            if os.path.exists(path):
                mounts.append(f"--volume={path}:{path}:ro")
        return mounts

    def base_archive(self) -> Path:
        """Debian with python3 and pip, as an OCI archive for ``FROM``."""
        key = hashlib.sha256(
            f"{DEBIAN_SUITE} {DEBIAN_MIRROR} {' '.join(BASE_PACKAGES)} v1".encode()
        ).hexdigest()[:12]
        dest = images_dir() / f"base-debian-{DEBIAN_SUITE}-python3-{key}.tar"
        if dest.is_file():
            return dest
        mmdebstrap = _need("mmdebstrap")
        dest.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        _log(f"making the base image from Debian {DEBIAN_SUITE} with mmdebstrap (minutes)")
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            _run(
                [
                    mmdebstrap,
                    "--variant=apt",
                    "--include=" + ",".join(BASE_PACKAGES),
                    '--aptopt=Acquire::Retries "3"',
                    # Like python:3.12-slim, pip owns this Python: no PEP 668 marker,
                    # and no apt lists or caches in the image.
                    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
                    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
                    DEBIAN_SUITE,
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                "mmdebstrap",
            )
            staging = Path(tmp) / "base.tar"
            self._archive_rootfs(rootfs, staging, f"debian-{DEBIAN_SUITE}-python3")
            _log(f"base image in {time.monotonic() - started:.0f}s")
            return _publish(staging, dest)

    def _archive_rootfs(self, rootfs: Path, out: Path, tag: str) -> None:
        name = f"localhost/base:{tag}"
        container = subprocess.run(
            self._cmd("from", "scratch"), capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            _run(self._cmd("add", container, str(rootfs), "/"), "buildah add rootfs")
            _run(
                self._cmd(
                    "config",
                    "--cmd",
                    "python3",
                    "--env",
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    container,
                ),
                "buildah config",
            )
            _run(self._cmd("commit", "--rm", container, name), "buildah commit")
        except BaseException:
            subprocess.run(self._cmd("rm", container), capture_output=True, check=False)
            raise
        _run(self._cmd("push", name, f"oci-archive:{out}:{tag}"), "buildah push base")

    def dockerfile_archive(
        self, name: str, dockerfile: Path, context: Path, sources: Iterable[str], tag: str
    ) -> tuple[Path, str]:
        """Build ``dockerfile`` on the Debian base; returns the archive and its tag."""
        base = self.base_archive()
        key = _tree_hash((REPO / s for s in sources), base.name)
        full_tag = f"{tag}-{key}"
        dest = images_dir() / f"{name.rsplit('/', 1)[-1]}-{full_tag}.tar"
        if dest.is_file():
            return dest, full_tag
        started = time.monotonic()
        _log(f"building {name}:{full_tag} from {dockerfile.relative_to(REPO)} with buildah")
        with tempfile.TemporaryDirectory(dir=images_dir()) as tmp:
            staging = Path(tmp) / "image.tar"
            _run(
                self._cmd(
                    "bud",
                    "--isolation=chroot",
                    "--layers=false",
                    f"--build-arg=BASE_IMAGE=oci-archive:{base}",
                    *self._host_mounts(),
                    "--file",
                    str(dockerfile),
                    "--tag",
                    f"{name}:{full_tag}",
                    str(context),
                ),
                f"buildah bud {dockerfile.relative_to(REPO)}",
            )
            _run(
                self._cmd("push", f"{name}:{full_tag}", f"oci-archive:{staging}:{full_tag}"),
                "buildah push",
            )
            # The archive is what counts; the vfs store keeps only the base.
            subprocess.run(self._cmd("rmi", f"{name}:{full_tag}"), capture_output=True, check=False)
            _log(f"built {name}:{full_tag} in {time.monotonic() - started:.0f}s")
            return _publish(staging, dest, f"{name.rsplit('/', 1)[-1]}-{tag}-*.tar"), full_tag


def operator_image() -> tuple[Path, str]:
    """The product image built from the repository's Dockerfile."""
    return Builder().dockerfile_archive(
        OPERATOR_IMAGE, REPO / "Dockerfile", REPO, OPERATOR_SOURCES, read_version()
    )


def demo_app_image() -> tuple[Path, str]:
    """The demo app (hack/demo/app.py) on the same base."""
    return Builder().dockerfile_archive(
        DEMO_APP_IMAGE, REPO / "hack" / "demo" / "Dockerfile", REPO, DEMO_SOURCES, "1"
    )


def load_into_node(
    ctr_bin: Path, state_dir: Path, release_archive: Path | None = None
) -> dict[str, str]:
    """Build (or reuse) the product and demo images and import them into the
    node's containerd under their content tags and the names above.

    ``release_archive`` (``make dist``'s image archive, which carries its own
    name) replaces the product image: imported as a user imports it (`ctr
    images import`, which `kind load image-archive` runs), with no name given."""
    refs = {}
    builds = [(demo_app_image(), DEMO_APP_IMAGE, DEMO_APP_REF)]
    if release_archive is None:
        builds.insert(0, (operator_image(), OPERATOR_IMAGE, CHART_DEFAULT_IMAGE))
    else:
        node.import_image(ctr_bin, state_dir, release_archive, base_name=None)
        refs[OPERATOR_IMAGE] = CHART_DEFAULT_IMAGE
    for (archive, tag), base, alias in builds:
        node.import_image(ctr_bin, state_dir, archive, base)
        node.ctr(ctr_bin, state_dir, "images", "tag", "--force", f"{base}:{tag}", alias)
        refs[base] = f"{base}:{tag}"
    return refs
