# nsw-broker: the two commands a developer needs are `make run` and `make test`.
# Prerequisites on PATH: python3.11 (with venv), a Java 17+ JDK (java, javac), make, curl, mvn (Maven fetches the pinned Kafka jars and
# the libraries of the Java example agency and of the Kafka Streams comparison once).
# The embedded Kafka broker listens on 127.0.0.1:9092 (NSW_KAFKA_PORT) with state in .nsw/kafka (NSW_KAFKA_HOME).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NSW    := $(BIN)/nsw
# The Java example agency (tests/test_java_agency.py runs it): classes in target/classes, jars in target/lib.
JAVA_AGENCY       := adapters/examples/java-agency
JAVA_AGENCY_STAMP := $(JAVA_AGENCY)/target/.built
# The Kafka Streams (exactly_once_v2) comparison `make bench` runs (ops/_streams.py, tests/test_streams_bench.py):
# classes in target/classes, jars in target/dependency.
STREAMS_APP       := ops/streams
STREAMS_APP_STAMP := $(STREAMS_APP)/target/.built

.DEFAULT_GOAL := help
.PHONY: help install chromium run test conformance lint typecheck pytest bench bench-validate soak chaos kafka-start kafka-stop kafka-status clean distclean

help:
	@echo "make install      virtualenv + package + test tools + Kafka jars + Java example agency + Kafka Streams app + Chromium (quick when done)"
	@echo "make run          start Kafka, serve the hub and post the sample declarations"
	@echo "make test         start Kafka, then ruff, mypy and pytest"
	@echo "make bench        start Kafka and a hub, print the benchmark table (50/s, 200/s, max, floor, Kafka Streams)"
	@echo "make soak         a 30-minute run at 200/s printing RSS per process (SOAK_MINUTES, SOAK_RATE)"
	@echo "make chaos        the fault campaign: 3 brokers, 2 hubs, 100,000 declarations, every fault (CHAOS_COUNT, CHAOS_RATE)"
	@echo "make conformance  the shared UK CDS corpus: its tests (tests/conformance), each answer, the distribution"
	@echo "make kafka-stop   stop the embedded Kafka broker"
	@echo "make clean        stop Kafka, remove its state and the tool caches (distclean: also .venv)"

install: $(STAMP) $(JAVA_AGENCY_STAMP) $(STREAMS_APP_STAMP)

# The browser tests drive Debian's Chromium (NSW_CHROMIUM: another build); installed with apt-get when missing
# (by `make test`: serving the hub does not need it).
chromium:
	@sh ops/browser/ensure-chromium.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Redone only when pyproject.toml or the Kafka pom changes; `nsw kafka install` is itself idempotent.
$(STAMP): $(BIN)/python pyproject.toml ops/kafka/pom.xml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(NSW) kafka install
	@touch $@

# Rebuilt only when its pom or sources change.
$(JAVA_AGENCY_STAMP): $(JAVA_AGENCY)/pom.xml $(wildcard $(JAVA_AGENCY)/src/main/java/org/nsw/example/*.java)
	mvn -B -q -f $(JAVA_AGENCY)/pom.xml compile dependency:copy-dependencies
	@touch $@

$(STREAMS_APP_STAMP): $(STREAMS_APP)/pom.xml $(wildcard $(STREAMS_APP)/src/main/java/org/nsw/streams/*.java)
	mvn -B -q -f $(STREAMS_APP)/pom.xml compile dependency:copy-dependencies
	@touch $@

kafka-start: install
	$(NSW) kafka start

kafka-status: install
	$(NSW) kafka status

kafka-stop:
	@if [ -x $(NSW) ]; then $(NSW) kafka stop; else echo "no $(NSW): nothing to stop"; fi

run: kafka-start
	$(NSW) serve --post-samples

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: kafka-start chromium
	$(BIN)/pytest

test: kafka-start chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

# Starts a hub of its own on BENCH_PORT (the fused core and the auditor each in a process of its own beside the
# ingress, BENCH_SPLIT; per-trader rate and concurrency limits lifted, as the load comes from one trader) and
# measures it in one run, printed as one table
# (README "Benchmarks"): at 50/s (within its capacity here), at 200/s, at its maximum beside the Kafka floor,
# with CPU per submission, RSS per process and transactions; then the same phases for the pipeline written as a
# Kafka Streams application (exactly_once_v2) on the same broker, in the same table. The report is also written to bench.json.
# The hub gets up to 2 minutes to answer /healthz (it first reads its state back from Kafka).
BENCH_PORT    ?= 8090
# The services the bench's hub runs in child processes (nsw serve --split), one child per space-separated group:
# by default the fused core and the auditor each in a process of their own ("auditor" alone: the core beside the ingress).
BENCH_SPLIT   ?= router,adapters,aggregator auditor
BENCH_SECONDS ?= 20
SOAK_MINUTES  ?= 30
SOAK_RATE     ?= 200
BENCH_HUB = NSW_LOG_LEVEL=warning NSW_RATE_LIMIT=100000 NSW_RATE_BURST=100000 NSW_MAX_IN_FLIGHT_PER_TRADER=100000 \
	$(NSW) serve --port $(BENCH_PORT) $(foreach group,$(BENCH_SPLIT),--split $(group)) & pid=$$!; trap "kill $$pid" EXIT; \
	for i in $$(seq 600); do curl -sf http://127.0.0.1:$(BENCH_PORT)/healthz >/dev/null && break; sleep 0.2; done

bench: kafka-start
	@$(BENCH_HUB); \
	$(NSW) bench suite --url http://127.0.0.1:$(BENCH_PORT) --hub-pid $$pid --duration $(BENCH_SECONDS) --report bench.json

# The fault campaign (README "Fault campaign"): its own 3-broker cluster and 2 hub instances, CHAOS_COUNT
# declarations at CHAOS_RATE/s while brokers and hubs are killed, paused and restarted; exit 4 unless all zeros.
CHAOS_COUNT ?= 100000
CHAOS_RATE  ?= 38
chaos: install
	$(NSW) chaos --count $(CHAOS_COUNT) --rate $(CHAOS_RATE) --report chaos.json

# Validation and mapping throughput on the shared corpus beside bare lxml (no Kafka, no hub).
bench-validate: install
	$(NSW) bench validate --bundle hmrc-cds=$(NSW_CORPUS)/hmrc-cds/schemas --corpus $(NSW_CORPUS)/hmrc-cds/examples

# SOAK_MINUTES at SOAK_RATE/s against the same hub as `make bench`: RSS of every process (hub processes, Kafka,
# the load generator) every minute, then flat or growing per process. Not part of `make test`.
soak: kafka-start
	@$(BENCH_HUB); \
	$(NSW) bench soak --url http://127.0.0.1:$(BENCH_PORT) --hub-pid $$pid --minutes $(SOAK_MINUTES) \
	  --rate $(SOAK_RATE) --report soak.json

# Every declaration of the external HMRC corpus through map, route, decide and aggregate (no Kafka needed).
# The corpus is NSW_CORPUS (default ../shared/corpus); without it tests/conformance stops and says what to fetch.
NSW_CORPUS ?= ../shared/corpus
export NSW_CORPUS
CORPUS := $(NSW_CORPUS)/hmrc-cds
conformance: install
	$(BIN)/pytest tests/conformance
	$(NSW) conformance --bundle hmrc-cds=$(CORPUS)/schemas $(CORPUS)/examples

clean: kafka-stop
	rm -rf .nsw build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench-*.json bench.json soak.json chaos.json $(JAVA_AGENCY)/target $(STREAMS_APP)/target
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
