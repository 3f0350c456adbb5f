# syntax=docker/dockerfile:1
# rnnbridge: build a virtual environment with the wheel in one stage, run it from a slim
# image without build tools, as a non-root user.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# a C compiler for the optional transpose kernel (rnnbridge/engine/_transpose.c); only the
# built module reaches the runtime stage. Unpinned: whatever gcc the base image's Debian
# release ships builds it, and the compiler never runs in production.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY rnnbridge ./rnnbridge
COPY service ./service
COPY schemas ./schemas
RUN pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RNNBRIDGE_HOST=0.0.0.0 \
    RNNBRIDGE_PORT=8000
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin rnnbridge
COPY --from=builder /opt/venv /opt/venv
USER 10001
EXPOSE 8000
# slim images have no curl: probe /healthz with the standard library, on RNNBRIDGE_PORT
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RNNBRIDGE_PORT', '8000') + '/healthz', timeout=4)"]
# host and port from RNNBRIDGE_HOST / RNNBRIDGE_PORT (above; override them with -e)
CMD ["rnnbridge", "serve"]
