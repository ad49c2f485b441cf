# corral — the two commands: `make demo` and `make test`.
# Every target creates and reuses .venv from the system python3.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ARGS ?=
# PyTorch comes from the CPU wheel on this machine's disk, installed by file name, so pip
# never resolves `torch` against an index and never pulls a multi-GB CUDA build.
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-cp3*-manylinux*_x86_64.whl))

.PHONY: demo test lint bench crds venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifneq ($(TORCH_WHEEL),)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_WHEEL)"
else
	@echo "note: no local CPU wheel of torch 2.13.0; PyTorch examples and tests will say how to install it"
endif
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/corral demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# corral's CRDs for the Helm chart (Helm installs crds/ before templates); a test fails when stale.
CRDS_DIR := deploy/helm/corral/crds
crds: $(STAMP)
	rm -f $(CRDS_DIR)/*.yaml
	$(VENV)/bin/corral crds --output-dir $(CRDS_DIR)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b" >&2; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
