# Review, evaluation and training-label export (issue 6).
.PHONY: evaluate export-labels

# Outside checks call this exact form: make evaluate DETECTIONS=<layer> REFERENCE=<layer> OUTPUT=<summary.json>
# Optional: LAYER_OUTPUT=<file.gpkg> (matched detections + missed references), IOU=<threshold>.
evaluate: setup
	@test -n "$(DETECTIONS)" -a -n "$(REFERENCE)" -a -n "$(OUTPUT)" || { echo "usage: make evaluate DETECTIONS=<layer> REFERENCE=<layer> OUTPUT=<summary.json> [LAYER_OUTPUT=<file.gpkg>] [IOU=0.5]"; exit 2; }
	$(TSM) evaluate "$(DETECTIONS)" "$(REFERENCE)" "$(OUTPUT)" $(if $(LAYER_OUTPUT),--layer-output "$(LAYER_OUTPUT)") $(if $(IOU),--iou-threshold "$(IOU)") $(if $(OVERWRITE),--overwrite)

# Outside checks call this exact form: make export-labels IMAGE=<raster> LABELS=<polygons> OUTPUT=<folder>
# Optional: GSD=<m> CHECKPOINT=<pt> BANDS=1,2,3 CHIP_SIZE=<px> BUFFER=<m> CREATOR_LAB=<text>.
export-labels: setup
	@test -n "$(IMAGE)" -a -n "$(LABELS)" -a -n "$(OUTPUT)" || { echo "usage: make export-labels IMAGE=<raster> LABELS=<polygons> OUTPUT=<folder> [GSD=<m>] [BANDS=1,2,3] [CHIP_SIZE=256] [BUFFER=300]"; exit 2; }
	$(TSM) export-labels "$(IMAGE)" "$(LABELS)" "$(OUTPUT)" $(if $(GSD),--gsd "$(GSD)") $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)") $(if $(BANDS),--bands "$(BANDS)") $(if $(CHIP_SIZE),--chip-size "$(CHIP_SIZE)") $(if $(BUFFER),--buffer "$(BUFFER)") $(if $(CREATOR_LAB),--creator-lab "$(CREATOR_LAB)") $(if $(OVERWRITE),--overwrite)
