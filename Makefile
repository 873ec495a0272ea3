# tfxpipe — the two commands a user needs are `make run` and `make test`.
SHELL := /bin/bash
# Two pinned stacks. modern: TFX 1.21 / Python 3.13, whose wheels need glibc >= 2.39. current: TFX 1.16 /
# Python 3.10, for older machines (Debian 12, Ubuntu 22.04). The machine picks; STACK=current|modern overrides.
DETECTED_STACK := $(shell glibc=$$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d" " -f2); \
	if [ -n "$$glibc" ] && printf '2.39\n%s\n' "$$glibc" | sort -V -C && command -v python3.13 >/dev/null; \
	then echo modern; else echo current; fi)
STACK ?= $(DETECTED_STACK)
ifeq ($(STACK),modern)
PYTHON ?= python3.13
LOCK := requirements/lock-modern.txt
else ifeq ($(STACK),current)
PYTHON ?= python3.10
LOCK := requirements/lock.txt
else
$(error STACK must be current or modern, not "$(STACK)")
endif
VENV := .venv
# One stamp per stack: switching stacks rebuilds the venv.
STAMP := $(VENV)/.installed-$(STACK)
# Lint/policy tools live apart from the project's pinned stack (their pins conflict with TFX's).
TOOLS_PYTHON ?= python3.11
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
IMAGE_TAG ?= 0.1.0
OVERLAY ?= dev
CONFIG ?= configs/penguin.yaml
PYTEST_ARGS ?=

.PHONY: venv tools run test test-unit test-integration test-e2e test-modern modern-root stack images deploy audit audit-offline clean

# The venv is rebuilt when the lock or setup.py changes, and is a no-op otherwise.
$(STAMP): $(LOCK) setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install it (pyenv install $(subst python,,$(PYTHON))) or set STACK/PYTHON"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r $(LOCK) 2>&1 | grep -v "is ignored: it is neither" || true
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
	$(VENV)/bin/python -c "import tfx, tensorflow, pipeline, trainer, serving" 
	touch $(STAMP)

venv: $(STAMP)

$(TOOLS_STAMP): requirements/tools.txt
	@command -v $(TOOLS_PYTHON) >/dev/null || { echo "error: $(TOOLS_PYTHON) not found (needed for checkov); set TOOLS_PYTHON"; exit 1; }
	rm -rf $(TOOLS_VENV)
	$(TOOLS_PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r requirements/tools.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(TOOLS_VENV)/bin/checkov --version >/dev/null
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

# The main job: run the pipeline, then serve the pushed model and query it over REST and gRPC.
run: $(STAMP)
	$(VENV)/bin/tfxpipe run --config $(CONFIG)
	$(VENV)/bin/tfxpipe serve-check --config $(CONFIG)

test: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(VENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS)

# The modern stack on a machine too old for it: a Debian 13 root (debootstrap, built once under .stack/),
# the modern lock installed in it (again only when the lock changes), and the unit tests, the penguin e2e,
# the serving conformance and the Kubeflow compile tests run there with the project bind-mounted. Needs root.
# modern-root only builds the root and installs the lock.
MODERN_TESTS ?= tests/unit tests/e2e/test_penguin_pipeline.py tests/integration/test_serving_conformance.py \
	tests/integration/test_kubeflow_compile.py
test-modern:
	scripts/modern_stack.sh run python -m pytest -p no:cacheprovider $(MODERN_TESTS) $(PYTEST_ARGS)

modern-root:
	scripts/modern_stack.sh venv

# Which stack this machine gets, and why.
stack:
	@echo "STACK=$(STACK) (detected: $(DETECTED_STACK); glibc $$(getconf GNU_LIBC_VERSION | cut -d' ' -f2), \
	python3.13 $$(command -v python3.13 >/dev/null && echo present || echo absent)) -> $(PYTHON), $(LOCK)"

# Container images (needs a Docker engine): the pipeline image for Kubeflow and the TF Serving image.
images:
	docker build -f docker/pipeline.Dockerfile -t tfxpipe/pipeline:$(IMAGE_TAG) .
	docker build -f docker/serving.Dockerfile -t tfxpipe/serving:$(IMAGE_TAG) .

# Apply serving/k8s/overlays/$(OVERLAY) to the current kube context (DRY_RUN=1 prints it instead).
deploy: $(STAMP)
	$(VENV)/bin/tfxpipe deploy --overlay $(OVERLAY) $(if $(DRY_RUN),--dry-run,)

# Audit the lock for known vulnerabilities (needs network access to PyPI's JSON API or OSV).
audit: $(TOOLS_STAMP)
	$(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check pip-audit
	$(TOOLS_VENV)/bin/pip-audit -r requirements/lock.txt --no-deps --disable-pip

# The same audit offline, against a clone of github.com/pypa/advisory-database; every finding needs a
# decision in requirements/audit-decisions.yaml (exit 1 otherwise).
ADVISORY_DB ?= ../advisory-database
audit-offline: $(STAMP)
	$(VENV)/bin/python scripts/audit_lock.py --advisories $(ADVISORY_DB)/vulns --lock requirements/lock.txt
	$(VENV)/bin/python scripts/audit_lock.py --advisories $(ADVISORY_DB)/vulns --lock requirements/tools.txt

clean:
	rm -rf runs build dist *.egg-info
