# syntax=docker/dockerfile:1
# The hub's services in one image; docker-compose.yml runs one container per service (`nsw serve --only X`)
# next to the official apache/kafka image. Every dependency installs from a wheel: no compiler needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY routing ./routing
COPY adapters ./adapters
COPY schemas ./schemas
COPY ops ./ops
RUN pip install . && rm -rf /src

RUN useradd --system --create-home --home-dir /home/nsw --uid 10001 --shell /usr/sbin/nologin nsw
USER nsw
WORKDIR /home/nsw

# Kafka bootstrap servers; docker-compose.yml points it at its `kafka` service.
ENV NSW_BOOTSTRAP=kafka:9092
EXPOSE 8080
CMD ["nsw", "serve", "--host", "0.0.0.0"]
