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
    PYTHONDONTWRITEBYTECODE=1
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
# The SQLite file lives here (DATABASE_URL defaults to sqlite:///data/bot.db): mount a volume on it.
RUN mkdir -p /app/data && chown 10001:10001 /app/data
VOLUME ["/app/data"]
USER 10001
CMD ["python", "bot.py"]
