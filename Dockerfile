# syntax=docker/dockerfile:1
# inspection-hub: build a wheel, then run it in a slim image as a non-root user against an
# external PostgreSQL (INSPECTION_HUB_DATABASE_URL). The embedded database is for laptops only.

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    INSPECTION_HUB_ENV=production \
    INSPECTION_HUB_HOST=0.0.0.0 \
    INSPECTION_HUB_PORT=8000 \
    INSPECTION_HUB_DATA_DIR=/var/lib/inspection-hub
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --home-dir /var/lib/inspection-hub \
       --shell /usr/sbin/nologin hub \
    && mkdir -p /var/lib/inspection-hub \
    && chown hub:hub /var/lib/inspection-hub
COPY --from=build /dist/*.whl /tmp/
RUN pip install /tmp/*.whl && rm /tmp/*.whl
USER hub
WORKDIR /var/lib/inspection-hub
EXPOSE 8000
# Required at run time: INSPECTION_HUB_DATABASE_URL, INSPECTION_HUB_TOKEN_PEPPER and
# INSPECTION_HUB_SESSION_SECRET (>= 32 characters; production refuses placeholders).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"
CMD ["inspection-hub", "serve", "--host", "0.0.0.0"]
