# One entry point for set-up, build, demo, tests and benchmarks. Everything lives in .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
NATIVE := $(wildcard _native/*.pyx _native/*.pxi _native/*.pxd _native/include/*.h)
STAMP  := $(VENV)/.installed

.PHONY: all setup build debug annotate sanitize sanitize-test demo test test-fast lint bench clean

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

# ASan + UBSan run of the native code without touching the in-place build: the tree is copied to
# $(SANITIZE_DIR), built there with GATEWAY_SANITIZE=1, and the native, fuzz, shm and audio tests
# run from the copy with libasan preloaded (the Python binary itself is not instrumented).
# The one RSS-growth test is deselected: under ASan, freed memory sits in the quarantine (RSS grows
# by design); fd, mapping and segment leaks are still checked by the rest of tests/shm.
SANITIZE_DIR   ?= /tmp/rtms-gateway-sanitize
SANITIZE_TESTS ?= tests/native tests/fuzz tests/shm tests/audio
SANITIZE_SKIP  ?= --deselect tests/shm/test_lifecycle.py::test_thousands_of_streams_leak_nothing
sanitize-test: $(VENV)/bin/python
	rm -rf $(SANITIZE_DIR) && mkdir -p $(SANITIZE_DIR)
	cp -r gateway _native tests setup.py pyproject.toml README.md $(SANITIZE_DIR)/
	rm -f $(SANITIZE_DIR)/gateway/*.so $(SANITIZE_DIR)/_native/*.c
	cd $(SANITIZE_DIR) && GATEWAY_SANITIZE=1 GATEWAY_FORCE_CYTHONIZE=1 $(abspath $(PY)) setup.py -q build_ext --inplace --force
	cd $(SANITIZE_DIR) && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  PYTHONPATH=$(SANITIZE_DIR) $(abspath $(PY)) -m pytest -q -p no:cacheprovider $(SANITIZE_TESTS) $(SANITIZE_SKIP) $(PYTEST_ARGS)
