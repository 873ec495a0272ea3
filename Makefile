# tfxpipe — the two commands a user needs are `make run` and `make test`.
SHELL := /bin/bash
# pipefail: a command piped through a filter (pip below) still stops `make` when it fails.
.SHELLFLAGS := -o pipefail -c
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
# The tests run on every core (pytest-xdist; docs/testing.md). --dist loadfile keeps each module on one worker,
# so the pipeline runs a module shares through its module-scoped fixtures happen once and its tests keep
# their order; --no-loadscope-reorder hands the modules out in collection order, the long e2e ones first
# (by default xdist starts with the modules that have the most tests). PYTEST_XDIST= runs in one process.
PYTEST_XDIST ?= -n auto --dist loadfile --no-loadscope-reorder

.PHONY: venv check-venv tools missing-tools browser run test test-unit test-integration test-e2e test-modern modern-root stack images deploy audit audit-offline clean

# Installs a lock with --no-deps, so pip never resolves. A pip.conf naming local indexes makes pip warn
# "Location ... is ignored: it is neither a file nor a directory" once per package: only that line is
# dropped; pip's errors and exit status go through (pipefail).
PIP_FLAGS = -q --disable-pip-version-check --no-deps
WITHOUT_PIP_NOISE = 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

# The venv is rebuilt when the lock or setup.py changes, and is a no-op otherwise.
$(STAMP): $(LOCK) setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install it (pyenv install $(subst python,,$(PYTHON))) or set STACK/PYTHON"; exit 1; }
	@echo "building $(VENV) from $(LOCK) ($(STACK) stack; a few minutes, once)"
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install $(PIP_FLAGS) -r $(LOCK) $(WITHOUT_PIP_NOISE)
	@$(VENV)/bin/pip install $(PIP_FLAGS) --no-build-isolation -e . $(WITHOUT_PIP_NOISE)
	@$(MAKE) --no-print-directory check-venv VENV=$(VENV)
	@touch $(STAMP)

venv: $(STAMP)

# Every requirement of every installed package is met, and the stack imports. TensorFlow's import logs
# CUDA/cuDNN "E" lines on machines without a GPU, which are not failures: its output is shown only
# when the import fails.
check-venv:
	@test -x $(VENV)/bin/python || { echo "error: no virtualenv at $(VENV); run make venv"; exit 1; }
	@log=$$(mktemp) && trap 'rm -f "$$log"' EXIT; \
	$(VENV)/bin/pip check --disable-pip-version-check >"$$log" 2>&1 \
		|| { cat "$$log"; echo "error: $(VENV) lacks what its packages require (above); is the lock complete?"; exit 1; }; \
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/python -c "import tfx, tensorflow, pipeline, trainer, serving" >"$$log" 2>&1 \
		|| { cat "$$log"; echo "error: the stack in $(VENV) does not import (see above)"; exit 1; }
	@echo "$(VENV): every requirement met, tfx and tensorflow import"

$(TOOLS_STAMP): requirements/tools.txt
	@$(TOOLS_PYTHON) --version >/dev/null 2>&1 || { echo "error: $(TOOLS_PYTHON) not found (needed for checkov); install Python 3.11 (pyenv install 3.11) or set TOOLS_PYTHON"; exit 1; }
	@echo "building $(TOOLS_VENV) from requirements/tools.txt (checkov, once)"
	@rm -rf $(TOOLS_VENV)
	@$(TOOLS_PYTHON) -m venv $(TOOLS_VENV)
	@$(TOOLS_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/tools.txt $(WITHOUT_PIP_NOISE)
	@$(TOOLS_VENV)/bin/checkov --version >/dev/null
	@touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

# The tests need python3.11 (for the tools venv) and kubectl; without one, the tests that need it skip,
# each naming the tool and how to install it, and this says so before they start.
HAVE_TOOLS_PYTHON := $(shell $(TOOLS_PYTHON) --version 2>/dev/null)
TEST_TOOLS := $(if $(HAVE_TOOLS_PYTHON),$(TOOLS_STAMP)) missing-tools

missing-tools:
	@$(if $(HAVE_TOOLS_PYTHON),true,echo "note: $(TOOLS_PYTHON) not found: the checkov tests will skip; install Python 3.11 (pyenv install 3.11)")
	@command -v kubectl >/dev/null || echo "note: kubectl not found: the manifest tests will skip; install it (https://kubernetes.io/docs/tasks/tools/)"

# The report's browser tests drive headless Chromium: Debian's chromium and chromium-driver, installed here when
# absent and apt-get can (as root, as CI runs); otherwise those tests skip, naming this.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver (apt-get) for the HTML report's browser tests"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
			|| echo "note: could not install chromium: the report's browser tests will skip"; \
	else echo "note: chromium/chromedriver not found: the report's browser tests will skip; install them (apt-get install chromium chromium-driver)"; fi

# The main job: run the pipeline, then serve the pushed model and query it over REST and gRPC.
run: $(STAMP)
	$(VENV)/bin/tfxpipe run --config $(CONFIG)
	$(VENV)/bin/tfxpipe serve-check --config $(CONFIG)

test: $(STAMP) $(TEST_TOOLS) browser
	$(VENV)/bin/python -m pytest tests $(PYTEST_XDIST) $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_XDIST) $(PYTEST_ARGS)

test-integration: $(STAMP) $(TEST_TOOLS)
	$(VENV)/bin/python -m pytest tests/integration $(PYTEST_XDIST) $(PYTEST_ARGS)

test-e2e: $(STAMP) browser
	$(VENV)/bin/python -m pytest tests/e2e $(PYTEST_XDIST) $(PYTEST_ARGS)

# The modern stack on a machine too old for it: a Debian 13 root (debootstrap, built once under .stack/),
# the modern lock installed in it (again only when the lock changes), and the unit tests, the penguin e2e,
# the serving conformance and the Kubeflow compile tests run there with the project bind-mounted. Needs root.
# modern-root only builds the root and installs the lock.
MODERN_TESTS ?= tests/unit tests/e2e/test_penguin_pipeline.py tests/integration/test_serving_conformance.py \
	tests/integration/test_kubeflow_compile.py
test-modern:
	scripts/modern_stack.sh run python -m pytest -p no:cacheprovider $(MODERN_TESTS) $(PYTEST_XDIST) $(PYTEST_ARGS)

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
	$(VENV)/bin/tfxpipe deploy --config $(CONFIG) --overlay $(OVERLAY) $(if $(DRY_RUN),--dry-run,)

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
