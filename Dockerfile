# Build stage: install the pinned runtime dependencies into a virtual environment.
FROM python:3.11-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

# Run stage: the same slim base, the venv and the source, as a non-root user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METRICS_PORT=9100
RUN useradd --create-home --uid 10001 bot
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY bot.py ./
COPY cli ./cli
COPY cogs ./cogs
COPY ui ./ui
COPY services ./services
COPY migrations ./migrations
COPY locales ./locales
# The SQLite file lives here (DATABASE_URL defaults to sqlite:///data/bot.db): mount a named volume on it
# (docker run -v flux-data:/app/data). No VOLUME line: with PostgreSQL it would leave an unused anonymous volume.
RUN mkdir -p /app/data && chown 10001:10001 /app/data
USER 10001
# /healthz (on METRICS_PORT, 127.0.0.1 inside the container): 200 when the gateway is connected and the database
# answers. Docker and compose only mark a failing container "unhealthy"; they never restart it (restart policies
# act on exits). An orchestrator (Kubernetes, Nomad, Swarm) or an autoheal container does: docs/operating.md
# "Metrics and health". A stalled process's jobs do not wait for that: other processes adopt them once its leases run out.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['METRICS_PORT'], timeout=4)"]
CMD ["python", "bot.py"]
