# Dompet API / worker image. Built by docker-compose.yml; runs as a non-root user.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

RUN pip install --no-cache-dir uv

WORKDIR /app
# Dependencies first (cached layer), exactly as locked, without the dev group.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev

RUN useradd --system --uid 10001 --home /app dompet && mkdir -p /app/data && chown dompet /app/data
USER dompet

# It binds every interface: production mode, which refuses to start without JWT_SECRET.
ENV PATH="/app/.venv/bin:${PATH}" \
    DOMPET_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000

# `dompet migrate` is idempotent: safe to run at every start.
CMD ["sh", "-c", "dompet migrate && exec dompet serve"]
