# One image for web, worker-ingest and worker-gpu (see docker-compose.yml).
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings \
    MEDIA_ROOT=/data/media
WORKDIR /app
COPY requirements.txt requirements-ml.txt ./
# torch==2.13.0 from PyPI is the CUDA build on x86_64: the same image serves the GPU workers.
RUN pip install --no-cache-dir -r requirements-ml.txt
COPY slides/ slides/
COPY inference/ inference/
COPY webapp/ webapp/
COPY manage.py ./
COPY --from=frontend /src/frontend/dist frontend/dist
RUN useradd --system --uid 1000 --home /app pathdesk \
    && mkdir -p /data/media /data/features /app/var \
    && chown -R pathdesk /data/media /data/features /app/var \
    && DEBUG=1 python manage.py collectstatic --noinput --verbosity 0
USER pathdesk
EXPOSE 8000
CMD ["uvicorn", "webapp.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
