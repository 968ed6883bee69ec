# syntax=docker/dockerfile:1
# tokentail: one image for every command (proxy, collector, dashboard, simulate, up).
#
#   docker build -t tokentail .
#   docker run --rm -p 127.0.0.1:8787:8787 -e TOKENTAIL_READ_TOKEN=... \
#       tokentail proxy --upstream https://api.openai.com/v1
#
# compose.yaml runs the whole stack from this image. The tag pins Python's minor version and
# the Debian release; CI and `make` install the same pinned dependencies (constraints.txt).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with tokentail and its pinned dependencies ---------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/tokentail
WORKDIR /src
# Only what the wheel is built from (.dockerignore is an allowlist of the same files).
COPY pyproject.toml constraints.txt README.md ./
COPY tokentail/ tokentail/
COPY proxy/ proxy/
COPY collector/ collector/
COPY dashboard/ dashboard/
# Not editable: the runtime image carries the installed package, not these sources.
RUN /opt/tokentail/bin/pip install -c constraints.txt .

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tokentail" \
      org.opencontainers.image.description="See every LLM request as it streams: proxy, collector and dashboard for OpenAI-compatible APIs" \
      org.opencontainers.image.licenses="Apache-2.0"
# An unprivileged user owning only /data (the collector's DuckDB file; mount a volume there).
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tokentail \
    && mkdir -p /data && chown tokentail:tokentail /data
COPY --from=build /opt/tokentail /opt/tokentail
# Servers bind 0.0.0.0: a container's loopback is unreachable from outside it. Off loopback,
# reading captured content needs TOKENTAIL_READ_TOKEN and state changes TOKENTAIL_ADMIN_TOKEN
# (or --insecure), so the image ships no way in without a token you choose.
ENV PATH=/opt/tokentail/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOKENTAIL_PROXY_HOST=0.0.0.0 \
    TOKENTAIL_COLLECTOR_HOST=0.0.0.0 \
    TOKENTAIL_DASHBOARD_HOST=0.0.0.0 \
    TOKENTAIL_SIMULATE_HOST=0.0.0.0 \
    TOKENTAIL_COLLECTOR_DB=/data/tokentail.duckdb
WORKDIR /data
USER 10001:10001
# proxy, collector, dashboard, simulator (the commands' default ports)
EXPOSE 8787 8788 8050 8799
ENTRYPOINT ["tokentail"]
CMD ["--help"]
