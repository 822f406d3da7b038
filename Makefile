# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck bench fuzz soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# Four handlers that each make a (simulated, 30 ms) model call, run as parallel handler
# parameters; then the same program with one branch at a time, for comparison.
demo: $(STAMP)
	$(BIN)/cx run examples/parallel_models.cx --latency 30ms --stats
	$(BIN)/cx run examples/parallel_models.cx --latency 30ms --stats --sequential > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check src tests examples

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/cx bench

# The long run of the pipeline fuzzers and of the coordinator's conformance scenarios (make test
# runs short ones): Hypothesis, the scenarios, then atheris (coverage-guided, seeded with the
# examples) where it installs.
fuzz: $(STAMP)
	CX_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -q tests/fuzz
	CX_CONFORMANCE_SCENARIOS=5000 CX_CONFORMANCE_SEED=100000 \
		$(BIN)/python -m pytest -q tests/runtime/test_conformance.py
	if $(BIN)/python -m pip install --quiet atheris; then \
		mkdir -p .fuzz-corpus && cp examples/*.cx .fuzz-corpus/ && \
		$(BIN)/python tests/fuzz/atheris_pipeline.py -runs=20000 .fuzz-corpus; \
	else echo "atheris does not install here: the Hypothesis run above is the fuzz run"; fi

# The load tests at full size: 1,000,000 events, 10,000 branches, 1,000 entities, a long
# multi-agent run (make test runs them small). Figures: docs/reliability.md.
soak: $(STAMP)
	CX_SOAK=1 $(BIN)/python -m pytest -q --durations=0 tests/reliability/test_load.py

clean:
	rm -rf $(VENV) .venv-newer build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
