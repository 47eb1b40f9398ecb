# syntax=docker/dockerfile:1
# The proxy's runtime install only: no test harness, no mock upstream, so it needs
# OPENAI_API_KEY. Every setting is an environment variable (see `voice-agent-proxy --help`).
#
#   docker build -t voice-agent-realtime-proxy:0.1.0 .
#   docker run --rm -p 8080:8080 -e OPENAI_API_KEY voice-agent-realtime-proxy:0.1.0
#
# docs/deploy.md says what was checked (statically) and what was not (it was never built).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a wheel of this project and a virtualenv holding it and its runtime dependencies
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY proxy ./proxy
COPY harness ./harness
# No extras: [mock]/[harness]/[dev] bring the openai SDK, pydantic and pytest. pip itself
# is removed from the venv: nothing installs at run time.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install /wheels/*.whl \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- run: the venv on a fresh base, as an unprivileged user with a numeric id
# (Kubernetes' runAsNonRoot can only check a numeric USER).
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 proxy \
    && useradd --system --uid 10001 --gid proxy --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin proxy
COPY --from=build /opt/venv /opt/venv
# Bytecode was compiled at install time; the root filesystem may be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENAI_PROXY_PORT=8080 \
    OPENAI_PROXY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
# SIGTERM starts the drain: /readyz turns 503, sessions get --drain-seconds to finish.
STOPSIGNAL SIGTERM
# No curl in the image: the standard library asks GET /healthz on the port in use.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as r; tls = bool(os.environ.get('OPENAI_PROXY_TLS_CERT')); r.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('OPENAI_PROXY_PORT', '8080') + '/healthz', timeout=2, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["voice-agent-proxy"]
# All interfaces (the container's network is the boundary); no browser test-app in production.
CMD ["--host", "0.0.0.0", "--no-test-app"]
