# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-out

.PHONY: demo test test-fast bench bench-ingest bench-scan bench-quality bench-privacy bench-spark bench-serve deps-system calibrate clean otel-fixtures corpora train-content bench-content

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "python3.11 is required" >&2; exit 2; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# The optional Spark engine (pyspark, Java 17) for its tests and benchmark; Java from Debian only where missing.
SPARK_STAMP := $(VENV)/.installed-spark
$(SPARK_STAMP): $(STAMP)
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }
	$(BIN)/pip install -q -e '.[test,spark]'
	@touch $(SPARK_STAMP)

# A real LiteLLM proxy for the gateway test (tests/test_litellm_proxy.py), in its own venv:
# installing it into the project's would change ~30 shared packages.
LITELLM_VENV := .venv-litellm
# The OTel SDK and OTLP/HTTP exporter there serve LiteLLM's `callbacks: ["otel"]` and the exporter tests.
LITELLM_STAMP := $(LITELLM_VENV)/.installed-otel
$(LITELLM_STAMP):
	@test -x $(LITELLM_VENV)/bin/python || $(PY) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q 'litellm[proxy]==1.106.2' 'opentelemetry-sdk==1.45.2' 'opentelemetry-exporter-otlp-proto-http==1.45.2'
	@touch $(LITELLM_STAMP)

demo: $(STAMP)
	$(BIN)/distillguard demo --out $(DEMO_DIR)

# System packages the serve tests and benchmark use (redis-server, wrk), from Debian only where missing.
deps-system:
	@command -v redis-server >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server wrk; }

test: $(STAMP) $(SPARK_STAMP) $(LITELLM_STAMP) deps-system
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@$(BIN)/python scripts/fetch_corpora.py || echo "corpora unavailable: the corpus tests will skip"
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: bench-ingest bench-scan bench-quality

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py

bench-scan: $(STAMP)
	$(BIN)/python benchmarks/bench_scan.py

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/bench_quality.py

# Randomized report worlds (never fitted on), leave-one-type-out with LOCO=TYPE MODEL=..., and
# Glasswally's labelled set when GLASSWALLY_LABELED points at its datasets/labeled_5k.jsonl.
.PHONY: bench-generalization
bench-generalization: $(STAMP)
	$(BIN)/python benchmarks/bench_generalization.py $(if $(LOCO),--loco $(LOCO)) $(if $(MODEL),--model $(MODEL))

# Adversary adaptation: each operator change of sim/ranges.yaml `adaptations` against the same
# fit-range worlds unadapted (docs/evaluation.md); ONLY=name,name SEEDS=LO-HI to narrow it.
.PHONY: bench-adaptation
bench-adaptation: $(STAMP)
	$(BIN)/python benchmarks/bench_adaptation.py $(if $(ONLY),--only $(ONLY)) $(if $(SEEDS),--seeds $(SEEDS))

# What redaction before storage and encryption at rest cost (docs/privacy.md).
bench-privacy: $(STAMP)
	$(BIN)/python benchmarks/bench_privacy.py

bench-spark: $(SPARK_STAMP)
	$(BIN)/python benchmarks/bench_spark.py

bench-serve: $(STAMP) deps-system
	$(BIN)/python benchmarks/bench_serve.py

# Refit the packaged fusion weights across the randomized worlds of the *fit* range
# (sim/ranges.yaml protocol.fit: train phrasing), each scored against its own
# population; never on the report worlds the quality figures are measured on.
CAL_DIR ?= bench-data/calibration
calibrate: $(STAMP)
	mkdir -p $(CAL_DIR)
	$(BIN)/python benchmarks/bench_generalization.py --fit-worlds > $(CAL_DIR)/fit-worlds.txt
	$(BIN)/distillguard calibrate $$(sed 's/^/--world /' $(CAL_DIR)/fit-worlds.txt) --out src/distillguard/score/model.yaml

# Regenerate tests/data/otel/ from the real instrumentation (its own venvs under bench-data/; docs/ingest.md).
otel-fixtures: $(LITELLM_STAMP)
	$(PY) scripts/capture_otel_fixtures.py

# Public corpora for the content scorers (signals/content/corpora.yaml), cached under bench-data/corpora.
corpora: $(STAMP)
	$(BIN)/python scripts/fetch_corpora.py

# Retrain the shipped intent scorers on the exemplar bank plus the corpora's train sources.
train-content: corpora
	$(BIN)/python -m distillguard.signals.content.train

# Per-source / per-language intent figures on held-out corpora, classify speed, account-level rates.
bench-content: $(STAMP)
	@$(BIN)/python scripts/fetch_corpora.py || echo "corpora unavailable: bench-content will skip"
	$(BIN)/python benchmarks/bench_content.py

clean:
	rm -rf $(DEMO_DIR) bench-data .pytest_cache
