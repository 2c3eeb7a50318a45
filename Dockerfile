# syntax=docker/dockerfile:1
# Build stage: compile wheels so the runtime image needs no compiler.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# python-ldap has no wheels for Linux: it compiles against OpenLDAP's and Cyrus SASL's headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

# Runtime stage: non-root, data in a volume, the documented production start.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000
# The shared libraries the python-ldap wheel links against (bookworm's OpenLDAP 2.5).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 registryadmin \
 && useradd --system --uid 10001 --gid registryadmin --home-dir /app --shell /usr/sbin/nologin registryadmin
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/* && rm -rf /wheels
COPY --chown=registryadmin:registryadmin . /app
RUN mkdir -p /data && chown registryadmin:registryadmin /data \
 && SECRET_KEY=collectstatic-only DATA_DIR=/tmp python manage.py collectstatic --noinput --verbosity 0
USER registryadmin
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn registryadmin.wsgi:application --config registryadmin/gunicorn.py --bind 0.0.0.0:${PORT} --workers 2 --access-logfile -"]
