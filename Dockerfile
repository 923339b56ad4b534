# soxbot as a long-lived paper-trading service on Alpaca. Build: docker build -t soxbot .
# Run:  docker compose up -d          (compose.yaml: keys from .env, the journal on a volume), or
#       docker run -d --name soxbot -v soxbot-data:/data -p 127.0.0.1:9108:9108 \
#         -e APCA_API_KEY_ID=PK... -e APCA_API_SECRET_KEY=... -e SOXBOT_SERVICE__HEALTH_TOKEN=... soxbot
# The base's Python must be the one requirements.lock was compiled for (its header: --python-version).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SOXBOT_JOURNAL__PATH=/data/soxbot.db SOXBOT_DATA__CACHE_DIR=/data/cache

WORKDIR /app
# Dependencies first, exactly as pinned and hashed in the lock: this layer is rebuilt only when the
# lock changes, not on every code change.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# Then soxbot itself (no dependency resolution: everything it needs is already installed).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY strategies ./strategies
RUN pip install --no-deps --no-build-isolation . && pip check \
    && useradd --create-home --uid 10001 soxbot && mkdir -p /data /config && chown -R soxbot:soxbot /data
COPY docker/config.toml /config/config.toml
COPY docker/healthcheck.py /app/healthcheck.py

USER soxbot
VOLUME ["/data"]
EXPOSE 9108 9109
HEALTHCHECK --interval=60s --timeout=5s --start-period=120s --retries=3 CMD ["python", "/app/healthcheck.py"]
ENTRYPOINT ["soxbot", "run"]
CMD ["--config", "/config/config.toml"]
