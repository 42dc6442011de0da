# One entry point for set-up, build, demo, tests and benchmarks. Everything lives in .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
NATIVE := $(wildcard _native/*.pyx _native/*.pxi _native/*.pxd _native/include/*.h)
STAMP  := $(VENV)/.installed

.PHONY: all setup build debug annotate sanitize demo test test-fast lint bench clean

all: build

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Dependencies first (so the build sees the pinned Cython and picows), then the package itself.
$(STAMP): $(VENV)/bin/python pyproject.toml setup.py $(NATIVE)
	$(PIP) install -q "setuptools>=77" wheel "Cython==3.3.1" "picows==2.3.1"
	$(PIP) install -q --no-build-isolation -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

debug:
	GATEWAY_DEBUG=1 GATEWAY_FORCE_CYTHONIZE=1 $(PY) setup.py -q build_ext --inplace --force

annotate:
	GATEWAY_ANNOTATE=1 GATEWAY_FORCE_CYTHONIZE=1 $(PY) setup.py -q build_ext --inplace --force

sanitize:
	GATEWAY_SANITIZE=1 GATEWAY_FORCE_CYTHONIZE=1 $(PY) setup.py -q build_ext --inplace --force

# The main job: simulator + gateway + consumer in one process tree, live status, summary.
demo: build
	$(VENV)/bin/gateway demo $(DEMO_ARGS)

test: build
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: build
	$(PY) -m pytest -q -m "not slow and not official" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check gateway tests benchmarks

bench: build
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf build *.egg-info gateway/*.so _native/*.c _native/*.html .pytest_cache .benchmarks
