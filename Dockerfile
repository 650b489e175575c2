# Production image: `digest run` (the scheduler) by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DIGEST_DATABASE_URL=sqlite:////app/var/digest.db \
    DIGEST_DATA_DIR=/app/var \
    DIGEST_CONFIG_DIR=/app/config \
    DIGEST_TEMPLATES_DIR=/app/templates \
    DIGEST_DELIVERY=file:///app/var/outbox

WORKDIR /app
RUN groupadd --system digest && useradd --system --gid digest --home-dir /app --shell /usr/sbin/nologin digest

# dependencies first, for layer caching
COPY pyproject.toml README.md ./
COPY digest ./digest
RUN pip install ".[postgres]"

COPY templates ./templates
COPY config ./config
COPY samples ./samples
RUN mkdir -p /app/var && chown -R digest:digest /app/var

USER digest
VOLUME ["/app/var"]
ENTRYPOINT ["digest"]
CMD ["run"]
