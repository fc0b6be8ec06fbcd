# The two commands of the README: `make run` and `make test`. Both set up what they need.
# The distribution's interpreter where there is one: Debian builds it with profile-guided
# optimisation and links it statically, and the media path takes ~5 % less CPU on it than
# on a plain source build such as pyenv's (bench/capacity.py's figures are measured on it).
# Any python3 on the PATH otherwise.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= dialplans/default.yaml
# Debian packages: libopus for the bridge itself; the tests also drive real SIP clients,
# and the benchmarks compare against libspandsp and libspeexdsp (bench/quality.py) and
# Janus AudioBridge (bench/capacity.py).
RUNTIME_PACKAGES := libopus0
DEBIAN_PACKAGES := $(RUNTIME_PACKAGES) sip-tester baresip espeak-ng sox libspandsp2 \
	libspeexdsp1 janus kamailio
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint unit system-packages prompts clean

$(BIN)/.installed: pyproject.toml
	@# Debian ships venv and the C headers (a test package builds from source) apart.
	@$(PYTHON) -c "import ensurepip, os, sys, sysconfig; \
	  sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" 2>/dev/null \
	  || $(MAKE) --no-print-directory system-packages DEBIAN_PACKAGES="python3-venv python3-dev"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	@$(MAKE) --no-print-directory system-packages DEBIAN_PACKAGES="$(RUNTIME_PACKAGES)"
	$(BIN)/telerapat serve --config $(CONFIG)

system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# Debian starts a system kamailio on 5060 (all interfaces) where systemd runs; the tests
	@# start their own, and the bridge's default dialplan needs that port.
	@if [ -d /run/systemd/system ] && systemctl is-enabled --quiet kamailio 2>/dev/null; then \
	  $(SUDO) systemctl disable --now kamailio.service || true; fi

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(BIN)/.installed system-packages lint
	$(BIN)/pytest
	$(BIN)/python bench/tick.py --smoke
	$(BIN)/python bench/bandwidth.py --smoke
	$(BIN)/python bench/quality.py --smoke
	$(BIN)/python bench/capacity.py --smoke
	$(BIN)/python bench/capacity.py --smoke --no-janus --loss 0.05

prompts: $(BIN)/.installed system-packages
	$(BIN)/python prompts/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
