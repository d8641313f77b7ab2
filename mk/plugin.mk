# QGIS plugin (issue 3): package, install, desktop, screenshot.
.PHONY: package check-package install qgis screenshot

PLUGIN_ZIP := dist/thaw_slump_mapper.zip
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default

# dist/thaw_slump_mapper.zip: one top folder thaw_slump_mapper, LICENSE, metadata, the bundled
# checkpoint; no tests, tools, caches. Checked against the plugins.qgis.org rules.
package: setup
	$(PY) tools/package_plugin.py --output $(PLUGIN_ZIP)

check-package:
	$(PY) tools/check_plugin_zip.py $(PLUGIN_ZIP)

# Into the QGIS profile's plugins folder; packages QGIS's Python lacks are pip-installed into
# <profile>/python/thaw_slump_mapper_deps/pyX.Y, which the plugin puts on sys.path.
# NO_DEPS=1 skips the pip step. By default only the light set (CPU detection with onnxruntime,
# no torch); FULL=1 adds torch and segmentation-models-pytorch (fine-tuning, CUDA).
install: package
	$(PY) tools/install_plugin.py $(PLUGIN_ZIP) --profile-dir "$(QGIS_PROFILE)" $(if $(NO_DEPS),--no-deps) $(if $(FULL),--full)

# The QGIS desktop with this checkout as the enabled plugin and demo/*.tif loaded (own profile
# under out/qgis-desktop, so the user's profile is untouched).
qgis: setup
	$(PY) tools/qgis_desktop.py

# docs/images/qgis_dock.png: real QGIS under Xvfb, the dock, a detection on the demo scene.
# SCREENSHOT_CHECKPOINT=<pt> uses another checkpoint than the bundled one.
screenshot: setup
	$(PY) tools/qgis_desktop.py --screenshot docs/images/qgis_dock.png $(if $(SCREENSHOT_CHECKPOINT),--checkpoint "$(SCREENSHOT_CHECKPOINT)")

# processing_provider/models/detect_describe_report.model3, the shipped Processing model
# (thawslump:detect -> thawslump:morphometry -> thawslump:report), rebuilt with PyQGIS.
.PHONY: processing-model
processing-model: setup
	$(PY) tools/make_processing_model.py

# docs/PROCESSING.md: one section per thawslump algorithm (the dialogs' Help button lands there).
.PHONY: processing-docs
processing-docs: setup
	$(PY) tools/make_processing_docs.py

# demo/: the Copernicus Sentinel-2 demo scene and its expert outlines, from ../shared/data.
.PHONY: demo-scene
demo-scene: setup
	$(PY) tools/make_demo_scene.py

# model/weights/<bundled>.onnx: the bundled checkpoint as a self-describing ONNX graph
# (float16-stored weights) so that CPU detection needs onnxruntime and no torch. Needs torch.
.PHONY: onnx-model onnx-parity
onnx-model: setup
	$(PY) -c "from thaw_slump_mapper.engine.onnx_model import export_onnx; from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path as b; print(export_onnx(b()))"

# Parity of the shipped graph with the float32 export, on the real chips and the demo scene.
onnx-parity: setup
	$(PY) tools/onnx_parity.py

# BENCHMARKS.md "Light install": headless detection with and without torch, alternated.
# out/light-venv: Debian's Python plus only the dock's light package set (no torch).
.PHONY: bench-light-install light-venv
light-venv: setup
	@test -x out/light-venv/bin/python || ( /usr/bin/python3 -m venv --system-site-packages out/light-venv && \
	  out/light-venv/bin/python -m pip install -q $$($(PY) -c "from thaw_slump_mapper.ui.dependency_check import REQUIRED_PACKAGES as r; print(' '.join(q for _, q in r))") )

bench-light-install: light-venv
	$(PY) tools/bench_light_install.py --light-site out/light-venv/lib/python3.11/site-packages --output BENCHMARKS.md
