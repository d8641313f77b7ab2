# Training: chip folder from the shared Arctic chips, the bundled checkpoint, user fine-tuning.
.PHONY: chips train train-bundled cross-validate
CHIPS_DIR ?= out/arctic_chips
S2_CHIPS_DIR ?= out/sentinel2_chips

chips: setup
	$(TSM) build-chips "$(SHARED)/data/arctic_rts_chips" "$(CHIPS_DIR)"
	$(TSM) build-chips "$(SHARED)/data/sentinel2_sites" "$(S2_CHIPS_DIR)"

# Outside checks call this exact form: make train DATA=<folder> OUTPUT=<checkpoint> [BASE=<pt>] [EPOCHS=n] [LR=x] [VAL_SHARE=x] [GSD=m] [PRECISION=auto|fp32|bf16|bf16-decoder]
train: setup
	@test -n "$(DATA)" -a -n "$(OUTPUT)" || { echo "usage: make train DATA=<chip folder> OUTPUT=<checkpoint.pt> [BASE=<pt>] [EPOCHS=n] [LR=x] [VAL_SHARE=x] [GSD=m] [PRECISION=auto|fp32|bf16|bf16-decoder]"; exit 2; }
	$(TSM) train $(DATA) --output "$(OUTPUT)" $(if $(BASE),--base "$(BASE)") $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(LR),--learning-rate $(LR)) $(if $(VAL_SHARE),--val-share $(VAL_SHARE)) $(if $(GSD),--gsd $(GSD)) $(if $(DEVICE),--device "$(DEVICE)") $(if $(PRECISION),--precision "$(PRECISION)")

# Reproduces model/weights/thaw_slump_deeplabv3plus.pt (same seed, fixed step count).
train-bundled: chips
	$(TSM) train "$(CHIPS_DIR)" "$(S2_CHIPS_DIR)" --bundled-recipe --overwrite --output model/weights/thaw_slump_deeplabv3plus.pt

# 3-fold cross-validation of the bundled recipe (the MODEL_CARD.md table); long: about 3x train-bundled / 2.
cross-validate: chips
	$(PY) -m thaw_slump_mapper.model.cross_validation "$(CHIPS_DIR)" out/cross_validation.json

# Training throughput: the default recipe against the recipe of 2026-11-25, one process (BENCHMARKS.md)
.PHONY: bench-train
bench-train: setup
	$(PY) tools/bench_train.py --rounds 5 --steps 6 --output BENCHMARKS.md
