# One image for the operator and the sidecar, each its own distribution and command:
#   prompt-operator run   (the Deployment in charts/prompt-operator)
#   prompt-sidecar        (beside each app; the chart's injection sets the command)
# The base is any image with Python 3.10+ and pip; the tests build it from
# Debian packages (BASE_IMAGE=...) so no registry is needed.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml LICENSE ./
COPY operator/ operator/
COPY sidecar/ sidecar/
COPY contract/ contract/
COPY client/ client/
COPY crds/ crds/
# Wheels of the operator and the sidecar, of the client (the first app in
# docs/first-app.md runs in this image) and of the contract the three require
# (pip takes it from ./contract), with their dependencies; nothing of this
# stage ships.
RUN python3 -m pip wheel --no-cache-dir --wheel-dir /wheels ./contract ./client ./sidecar .

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="prompt-operator" \
      org.opencontainers.image.description="Manage LLM prompts as Kubernetes resources and hot-reload them into running apps" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/prompt-operator/prompt-operator"
COPY --from=build /wheels /wheels
RUN python3 -m pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# Any non-root uid works; the chart runs as 65532 with a read-only root file system.
# The uid has no /etc/passwd entry, so USER names it for getpass.getuser()
# (kopf's peering identity; without it the operator stops at start).
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 USER=prompt-operator
ENTRYPOINT ["prompt-operator"]
CMD ["run"]
