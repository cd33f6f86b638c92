# syntax=docker/dockerfile:1
# The hub's services in one image; docker-compose.yml runs one container per service (`nsw serve --only X`)
# next to the official apache/kafka image, and deploy/k8s/ one Deployment per service. Every dependency
# installs from a wheel: no compiler needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
# Every package of pyproject.toml's [tool.setuptools.packages.find] (tests/test_deploy.py checks the list).
COPY broker ./broker
COPY routing ./routing
COPY adapters ./adapters
COPY schemas ./schemas
COPY ops ./ops
COPY refdata ./refdata
COPY console ./console
COPY errors ./errors
COPY config ./config
COPY bus ./bus
COPY cli ./cli
RUN pip install . && rm -rf /src

RUN useradd --system --create-home --home-dir /home/nsw --uid 10001 --shell /usr/sbin/nologin nsw \
    && install -d -o nsw -g nsw -m 0700 /var/lib/nsw
USER nsw
WORKDIR /home/nsw

# Kafka bootstrap servers (docker-compose.yml: its `kafka` service); the state folder, a volume shared by every
# container of a deployment (the keys `nsw provision` makes once); the admin port of every process.
ENV NSW_BOOTSTRAP=kafka:9092 \
    NSW_STATE_DIR=/var/lib/nsw \
    NSW_ADMIN_PORT=9464 \
    NSW_ADMIN_HOST=0.0.0.0
VOLUME ["/var/lib/nsw"]
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/readyz', timeout=5)"]
CMD ["nsw", "serve", "--host", "0.0.0.0"]
