# tfxpipe — the two commands a user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.10
VENV := .venv
STAMP := $(VENV)/.installed
CONFIG ?= configs/penguin.yaml
PYTEST_ARGS ?=

.PHONY: venv run test test-unit test-integration test-e2e clean

# The venv is rebuilt when the lock or setup.py changes, and is a no-op otherwise.
$(STAMP): requirements/lock.txt setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.10 (pyenv install 3.10)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r requirements/lock.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
	$(VENV)/bin/python -c "import tfx, tensorflow, pipeline, trainer, serving" 
	touch $(STAMP)

venv: $(STAMP)

# The main job: run the pipeline, then serve the pushed model and query it over REST and gRPC.
run: $(STAMP)
	$(VENV)/bin/tfxpipe run --config $(CONFIG)
	$(VENV)/bin/tfxpipe serve-check --config $(CONFIG)

test: $(STAMP)
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(VENV)/bin/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(VENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS)

clean:
	rm -rf runs build dist *.egg-info
