# syntax=docker/dockerfile:1.7
# Build stage: resolve the locked dependencies into /opt/venv with uv.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.8
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never
WORKDIR /srv/partnergate
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN uv sync --frozen --no-default-groups --no-editable

# Runtime stage: no build tools, a non-root user, a health check.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /srv/partnergate partnergate
WORKDIR /srv/partnergate
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/partnergate/migrations ./migrations
COPY --from=build /srv/partnergate/alembic.ini ./
COPY --from=build /srv/partnergate/app ./app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 ENVIRONMENT=production PORT=8000
USER partnergate
# The API; the worker serves /healthz and /metrics on WORKER_PORT.
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
CMD ["partnergate", "serve"]
