# Morphometry and report (issue 5). SAGA GIS is only the tests' reference, never needed here.
.PHONY: morphometry report bench-morphometry

morphometry: setup
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make morphometry INPUT=<polygons> DEM=<dem> OUTPUT=<gpkg>"; exit 2; }
	$(TSM) morphometry "$(INPUT)" "$(OUTPUT)" $(if $(DEM),--dem "$(DEM)") $(if $(OVERWRITE),--overwrite)

report: setup
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make report INPUT=<polygons> OUTPUT=<html> [IMAGE=<raster>]"; exit 2; }
	$(TSM) report "$(INPUT)" "$(OUTPUT)" $(if $(IMAGE),--image "$(IMAGE)") $(if $(OVERWRITE),--overwrite)

# 10,000 polygons on a 10000 x 10000 DEM; prints seconds and peak memory (solar timed separately)
bench-morphometry: setup
	$(PY) tools/bench_morphometry.py
