# The two commands of the README, and what they stand on.
#   make demo   scaffold, build, publish and install a service on a booted host
#   make test   install everything needed, then run the whole suite
#   make deb    microdeploy itself as the Debian package python3-microdeploy (stdeb)
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The system interpreter: dh-virtualenv builds venvs with it, and python3-debian
# and friends are importable from it.
PYTHON := /usr/bin/python3
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# Everything the suite and the demo run for real. Keep sorted.
APT_PACKAGES := \
	aptly build-essential ca-certificates curl debhelper dh-python dh-virtualenv dpkg-dev \
	fakeroot git gnupg groovy hiera-eyaml iproute2 lintian mmdebstrap \
	openssh-client piuparts puppet-agent puppet-lint python3-debian python3-dev \
	python3-all python3-stdeb python3-venv python3-virtualenv r10k reprepro rsync ruby-rspec-puppet sqv \
	systemd systemd-container zstd

.PHONY: help setup apt venv test lint unit demo bench clean deb

help:
	@echo "make demo   - build a service and show it running on a fresh Debian host"
	@echo "make test   - install what is needed and run the whole test suite"
	@echo "make setup  - only install (apt packages and $(VENV))"
	@echo "make deb    - build dist/python3-microdeploy_*.deb (stdeb, system python3)"

setup: apt venv

# Idempotent: installs only the packages that are missing.
apt:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "apt packages: all installed"; \
	fi

venv: $(VENV)/.installed

# setuptools tells every editable install of a flat layout to mind same-named
# folders (an InformationOnly notice): nothing to act on, so not shown.
$(VENV)/.installed: pyproject.toml setup.py
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(VENV)/bin/pip install -q -e '.[test]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check microdeploy tests demo bench
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest tests/unit

# pytest exits 5 when it collected no test; that is not a failure of the suite.
test: setup lint
	$(VENV)/bin/pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

demo: setup
	$(VENV)/bin/python -m demo

# Build times, sizes and install times against two references (bench/README.md).
bench: setup
	$(VENV)/bin/python -m bench

# microdeploy itself for apt: stdeb's sdist_dsc writes debian/ from setup.py and
# stdeb.cfg, packaging/stdeb_finish.py fixes what stdeb gets wrong on Debian 12
# and adds the copyright, man page and lintian overrides, then dpkg-buildpackage.
# The system interpreter and tools only: no venv on PATH, no venv variables.
DEB_WORK := build/stdeb
DEB_ENV := env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
	DEB_BUILD_OPTIONS=nocheck SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)}
deb: apt
	rm -rf $(DEB_WORK) dist/python3-microdeploy_* dist/microdeploy_* && mkdir -p $(DEB_WORK) dist
	$(DEB_ENV) $(PYTHON) setup.py --quiet sdist --dist-dir $(DEB_WORK)
	$(DEB_ENV) $(PYTHON) setup.py --quiet --command-packages=stdeb.command sdist_dsc \
		--dist-dir $(DEB_WORK) --compat 13 --use-premade-distfile $$(ls $(DEB_WORK)/microdeploy-*.tar.gz)
	$(PYTHON) packaging/stdeb_finish.py $(DEB_WORK)/microdeploy-*/
	cd $(DEB_WORK)/microdeploy-*/ && $(DEB_ENV) dpkg-buildpackage --build=binary --no-sign
	arch=$$(dpkg --print-architecture); cp $(DEB_WORK)/python3-microdeploy_*.deb \
		$(DEB_WORK)/microdeploy_*_$$arch.buildinfo $(DEB_WORK)/microdeploy_*_$$arch.changes dist/
	lintian --fail-on error dist/python3-microdeploy_*.deb

clean:
	rm -rf $(VENV) build dist deb_dist *.egg-info
