# soxbot as a long-lived service. Build: docker build -t soxbot .
# Run:  docker run -d --name soxbot -v soxbot-data:/data -e APCA_API_KEY_ID=... -e APCA_API_SECRET_KEY=... \
#         -v $PWD/config.toml:/config/config.toml:ro soxbot
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SOXBOT_JOURNAL__PATH=/data/soxbot.db SOXBOT_DATA__CACHE_DIR=/data/cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY strategies ./strategies
RUN pip install . && useradd --create-home --uid 10001 soxbot && mkdir -p /data /config \
    && chown -R soxbot:soxbot /data
COPY config.example.toml /config/config.toml

USER soxbot
VOLUME ["/data"]
EXPOSE 9108
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["soxbot", "run"]
CMD ["--config", "/config/config.toml"]
