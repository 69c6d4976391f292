# Vitrine's production image: the web (gunicorn) and the Celery worker run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# CPU builds of torch keep the image ~1.5 GB smaller than the default CUDA ones; for a GPU
# worker, build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
RUN pip install --index-url "$TORCH_INDEX" $TORCH_SPEC

COPY pyproject.toml README.md ./
COPY searchsite ./searchsite
COPY catalog ./catalog
COPY embeddings ./embeddings
COPY analytics ./analytics
COPY storefront ./storefront
COPY api ./api
RUN pip install .

COPY manage.py gunicorn.conf.py ./
COPY templates ./templates
COPY static ./static
COPY locale ./locale
COPY scripts/compile-messages ./scripts/compile-messages
RUN python scripts/compile-messages
# Hashed, precompressed static files (searchsite/settings.py, VITRINE_STATIC_MANIFEST).
ENV VITRINE_STATIC_MANIFEST=1
RUN VITRINE_DATA_DIR=/tmp/build VITRINE_STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput \
    && rm -rf /tmp/build

RUN useradd --create-home --uid 10001 vitrine \
    && mkdir -p /data/media /data/models /app/var/staticfiles \
    && chown -R vitrine /data /app/var
USER vitrine

ENV VITRINE_STATIC_ROOT=/app/staticfiles \
    VITRINE_MEDIA_DIR=/data/media \
    VITRINE_MODEL_CACHE_DIR=/data/models

EXPOSE 8000
CMD ["gunicorn", "searchsite.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--timeout", "120"]
