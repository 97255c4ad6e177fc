# One image for every initlab service; docker-compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TF_ENABLE_ONEDNN_OPTS=0 TF_CPP_MIN_LOG_LEVEL=2 \
    INITLAB_STATE_DIR=/var/lib/initlab INITLAB_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY frontend ./frontend
COPY migrations ./migrations
RUN pip install --no-cache-dir -e . && mkdir -p /var/lib/initlab /data

EXPOSE 8000
CMD ["initlab", "api", "--host", "0.0.0.0", "--port", "8000"]
