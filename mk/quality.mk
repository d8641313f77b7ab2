# Lint and the core's tests without QGIS (issue 14). `make test` runs both before the QGIS suite.

.PHONY: lint test-core
# ruff (pinned in requirements-dev.txt), rules in pyproject.toml; .venv*, out/ and build/ are excluded there.
lint: setup
	$(CURDIR)/$(VENV)/bin/ruff check $(CURDIR)

# A venv WITHOUT QGIS and without the link `make setup` writes: the core's tests must pass with
# plain pytest there (the rasterio and fiona wheels bring their own GDAL). Tests that need QGIS
# are skipped with that reason, so this run is not strict; the QGIS suite after it is.
CORE_VENV := .venv-core
CORE_PY := $(CURDIR)/$(CORE_VENV)/bin/python
CORE_TESTS := tests/core tests/engine tests/model tests/analysis

$(STAMPS)/venv-core: $(STAMPS)/system requirements.txt
	@test -x $(CORE_PY) || /usr/bin/python3 -m venv $(CORE_VENV)
	$(CORE_PY) -m pip install -q -r requirements.txt pytest==9.2.0
	@touch $@

test-core: $(STAMPS)/venv-core
	cd $(CURDIR) && $(CORE_PY) -m pytest $(CORE_TESTS) -q -p no:cacheprovider
