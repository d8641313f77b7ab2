# Detection engine: demo, detect, benchmark.
.PHONY: demo detect bench bench-engine

demo: setup
	$(TSM) demo --output-dir out/demo

# Outside checks call this exact form: make detect INPUT=<raster> OUTPUT=<file.gpkg> [BANDS=1,2,3] [CHECKPOINT=<pt>]
# The model_cache step exports/quantises the graphs in its own process (a no-op once cached),
# so detect itself runs without importing torch: ~480 MB less resident memory (engine/model_cache.py).
detect: setup
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make detect INPUT=<raster> OUTPUT=<file.gpkg> [BANDS=1,2,3] [CHECKPOINT=<file.pt>]"; exit 2; }
	@$(PY) -m thaw_slump_mapper.engine.model_cache "$(CHECKPOINT)" "$(PRECISION)"
	$(TSM) detect "$(INPUT)" "$(OUTPUT)" $(if $(BANDS),--bands "$(BANDS)") $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)") $(if $(DEVICE),--device "$(DEVICE)") $(if $(LAYER),--layer "$(LAYER)") $(if $(OVERWRITE),--overwrite) $(if $(PRECISION),--precision "$(PRECISION)") $(if $(TTA),--tta "$(TTA)") $(if $(TILE),--tile "$(TILE)")

bench: bench-engine bench-morphometry
bench-engine: setup
	$(PY) tools/bench_engine.py --output BENCHMARKS.md
