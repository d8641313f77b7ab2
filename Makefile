# Thaw Slump Mapper. `make demo` and `make test` do all the set-up on a fresh Debian 12.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMPS := .stamps
SHARED ?= $(abspath $(CURDIR)/../shared)
export QT_QPA_PLATFORM ?= offscreen
export SHARED

# The command line; the package is imported as thaw_slump_mapper whatever this folder is called.
TSM := $(PY) -m thaw_slump_mapper

.PHONY: help setup test
help:
	@echo "make demo    - install what is missing, then detect thaw slumps on the bundled demo scene"
	@echo "make test    - install what is missing, then run the whole test suite in real QGIS 3.22"
	@echo "make detect INPUT=<raster> OUTPUT=<file.gpkg> [BANDS=1,2,3] [CHECKPOINT=<file.pt>]"
	@echo "other targets: bench, package, install, qgis, screenshot, train, train-bundled,"
	@echo "               morphometry, report, evaluate, export-labels"
	@echo "make lint / make test-core - ruff alone / the core's tests in a venv without QGIS"

# --- set-up (idempotent: each step leaves a stamp and is skipped the next time) ----------
SYSTEM_PACKAGES := qgis python3-qgis qgis-providers saga xvfb python3-venv
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  echo "Installing QGIS 3.22, SAGA and Xvfb from Debian (needs root)..."; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); \
	fi
	@touch $@

$(STAMPS)/venv: $(STAMPS)/system requirements.txt requirements-dev.txt
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	@# Make `import thaw_slump_mapper` resolve to this checkout, whatever its folder name.
	@mkdir -p $(VENV)/pkg && ln -sfn $(CURDIR) $(VENV)/pkg/thaw_slump_mapper
	@echo "$(CURDIR)/$(VENV)/pkg" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/thaw_slump_mapper_checkout.pth
	@touch $@

setup: $(STAMPS)/venv

# Lint first, then the core's tests in a venv without QGIS, then everything in real QGIS.
test: setup lint test-core
	THAW_SLUMP_STRICT=1 $(PY) -m pytest tests -q -p no:cacheprovider

include $(wildcard mk/*.mk)
