# syntax=docker/dockerfile:1
# One image for every Broseph jobs process: `migrate`, `worker` (the default), `ingress bullmq`,
# `health`, `jobs …`. Build: `docker build -t broseph .` (README, "Deploying").
#
# PYTHON_IMAGE: any Debian-based image with python3.11 and its venv module (pin a digest in
# production, or point it at a mirror).
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: the locked dependencies and the broseph wheel, in /opt/venv ----------------------
FROM ${PYTHON_IMAGE} AS builder
# The uv that exports the lock and builds the wheel: the version uv.lock pins (test extra), so a
# relock that moves uv moves the builder too (tests/test_image.py keeps the two equal).
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"
ENV PATH=/opt/uv/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock (or the install script) changes.
# Every locked package ships a wheel (install.sh installs wheels only), so no compiler is needed.
COPY pyproject.toml uv.lock README.md ./
COPY deploy/install.sh deploy/install.sh
# Production extras: all of pyproject.toml's but `test`, `demo`, `bench` (deploy/install.sh).
RUN sh deploy/install.sh deps /opt/venv
COPY broseph broseph
COPY migrations migrations
RUN sh deploy/install.sh app /opt/venv

# --- final: the venv on a clean base, no uv, no build tools, not root ---------------------------
FROM ${PYTHON_IMAGE}
# METRICS_PORT: every long-running process (worker, ingress bullmq, dashboard) serves /livez,
# /readyz and /metrics on it (README, "Probes"); one port, since each container runs one process.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    METRICS_PORT=9464
RUN groupadd --gid 10001 broseph \
    && useradd --uid 10001 --gid broseph --create-home --home-dir /home/broseph \
        --shell /usr/sbin/nologin broseph
COPY --from=builder /opt/venv /opt/venv
# Numeric, so an orchestrator's runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/broseph

# Liveness must not ask the database: during an outage the worker waits it out on its own
# (DB_OUTAGE_TIMEOUT, then it exits and the restart policy starts it again), and a probe that
# failed with the database would restart healthy processes in a loop, dropping their in-flight
# work. /livez asks only whether the process's event loop still runs; /readyz (database,
# migrations, LISTEN, Redis) is for readiness, `broseph health` for status. python3 because the
# image has no curl; a one-shot command (migrate, health, jobs) ends before the first check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ['METRICS_PORT'], timeout=4)"]

# SIGTERM (docker stop) lets running jobs finish for SHUTDOWN_TIMEOUT seconds: give the container
# a longer stop grace period (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["broseph"]
CMD ["worker"]
