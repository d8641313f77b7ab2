# Batch detection over many scenes on this machine or a Dask cluster (issue 12, docs/BATCH.md).
.PHONY: detect-batch bench-batch

# Outside checks call this exact form: make detect-batch INPUTS=<folder|glob|list> OUTPUT=<file.gpkg>
# Optional: SCHEDULER=tcp://host:port WORKERS=n BANDS=1,2,3 CHECKPOINT=<pt> THRESHOLD=x SERIAL=1 OVERWRITE=1
detect-batch: setup
	@test -n "$(INPUTS)" -a -n "$(OUTPUT)" || { echo "usage: make detect-batch INPUTS=<folder|glob|list> OUTPUT=<file.gpkg> [SCHEDULER=tcp://host:port] [WORKERS=n] [BANDS=1,2,3] [CHECKPOINT=<pt>]"; exit 2; }
	$(TSM) detect-batch "$(INPUTS)" "$(OUTPUT)" $(if $(SCHEDULER),--scheduler "$(SCHEDULER)") $(if $(WORKERS),--workers "$(WORKERS)") $(if $(BANDS),--bands "$(BANDS)") $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)") $(if $(THRESHOLD),--threshold "$(THRESHOLD)") $(if $(DEVICE),--device "$(DEVICE)") $(if $(SERIAL),--serial) $(if $(OVERWRITE),--overwrite)

# One process against a LocalCluster of 2 workers on the same batch; writes its section of BENCHMARKS.md.
bench-batch: setup
	$(PY) tools/bench_batch.py --output BENCHMARKS.md
