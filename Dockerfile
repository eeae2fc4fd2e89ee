# syntax=docker/dockerfile:1
# The irsa-webhook image: `make image` (docker build -t irsa-webhook:dev .), and the provisioner's, the
# same with boto3: `make image-provisioner` (docker build --build-arg EXTRAS=provisioner ...).
#
# Two stages: the builder fills a virtualenv at /opt/venv from uv.lock (dependencies in their own
# cached layer, then the package), the final stage copies only that venv onto the same slim Python
# base. No compiler, no pip, no uv, no setuptools and no source tree end up in the final image.
# tests/deploy/image.py replays the builder stage (both images, with the Makefile's build arguments) and
# test_entrypoint.py runs this file's ENTRYPOINT, ENV and /webhook shim on a read-only filesystem; keep
# them simple enough to be read back from here.

# The base is pinned by its full version, written out in both FROM lines so that scanners and update
# bots read it; append @sha256:<digest> to both to pin a release build byte for byte.
FROM python:3.11.14-slim-bookworm AS builder
# uv installs exactly what uv.lock says (versions and sha256 hashes), into /opt/venv, with the base
# image's Python (never one it downloads), byte-compiling everything: the read-only image never needs
# to write a .pyc at run time.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# uv itself, the version and wheel hashes of .ci/requirements-uv.txt, in a venv of the builder only; and
# the image's venv, without pip or setuptools: uv fills it, nothing installs anything in it at run time.
COPY .ci/requirements-uv.txt .ci/
RUN python -m venv /opt/uv \
    && /opt/uv/bin/pip install --require-hashes --no-deps --only-binary=:all: --requirement .ci/requirements-uv.txt \
    && python -m venv --without-pip /opt/venv
# One optional extra of pyproject.toml installed too, by name: empty (the default, `make image`) is the
# lean webhook image; `--build-arg EXTRAS=provisioner` (`make image-provisioner`) adds boto3 for
# `irsa-webhook controller`. Declared here, after uv's own layer, so both images share that layer.
ARG EXTRAS=""
# Dependencies first, read from uv.lock alone (--locked: stop if pyproject.toml disagrees with it):
# this layer is rebuilt only when the lock changes, not on every source edit. All of them ship
# manylinux wheels, so no compiler is needed.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --locked --no-dev --no-editable --no-install-project ${EXTRAS:+--extra "$EXTRAS"}
# Then the package itself, non-editable, built by uv's own build backend (nothing downloaded).
COPY README.md ./
COPY webhook ./webhook
RUN /opt/uv/bin/uv sync --locked --no-dev --no-editable ${EXTRAS:+--extra "$EXTRAS"}

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="irsa-webhook" \
      org.opencontainers.image.description="IAM Roles for Service Accounts mutating admission webhook" \
      org.opencontainers.image.licenses="Apache-2.0"
# Read-only root filesystem: nothing may write a .pyc, a cache or a dotfile. HOME points nowhere, so
# a library that looks for ~/.something finds nothing instead of writing there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/nonexistent
COPY --from=builder /opt/venv /opt/venv
# Upstream compatibility: the AWS webhook's manifests run `command: ["/webhook", FLAGS...]` (its
# binary's path, no subcommand). /webhook is `irsa-webhook serve FLAGS...`, with upstream's default
# certificate paths stated first so that FLAGS can still override them (the last flag wins).
RUN printf '%s\n' \
        '#!/bin/sh' \
        'exec irsa-webhook serve --tls-cert=/etc/webhook/certs/tls.crt --tls-key=/etc/webhook/certs/tls.key "$@"' \
        > /webhook \
    && chmod 0555 /webhook
# The distroless "nonroot" uid/gid; the Deployment's securityContext says the same.
USER 65532:65532
WORKDIR /
# No HEALTHCHECK: the kubelet ignores it and probes /healthz and /readyz itself (deployment.yaml).
# checkov:skip=CKV_DOCKER_2:Kubernetes liveness/readiness probes replace HEALTHCHECK, which kubelet ignores
ENTRYPOINT ["irsa-webhook", "serve"]
