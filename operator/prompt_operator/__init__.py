"""prompt-operator."""

__version__ = "0.1.0"
# Where the release image is published (see hack/control-plane/prompt_cluster/release.py).
IMAGE_REPOSITORY = "ghcr.io/prompt-operator/prompt-operator"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
