"""The default fine-tuning numbers, in a module that imports nothing heavy.

Processing builds its parameter defaults from these when QGIS loads the provider, which must
not import torch; ``model.training.fine_tune_settings`` builds the full recipe from them.
The recipe was chosen by measurement (docs/TRAINING.md).
"""
from __future__ import annotations

TRAIN_SEED = 42  # crop order and augmentation draws; the front ends name it as their default
FINE_TUNE_EPOCHS = 60  # upper bound; on a CPU the wall-clock budget ends training first
FINE_TUNE_LEARNING_RATE = 1e-3
FINE_TUNE_MINUTES_CPU = 23.0  # training budget; loading, validation and calibration keep the run within 30 min
FINE_TUNE_MINUTES_CUDA = 20.0
FINE_TUNE_CROP_PX = 256  # a slump plus its context; capped at the chips' own size
FINE_TUNE_BATCH_CPU = 8
FINE_TUNE_BATCH_CUDA = 32
FINE_TUNE_FROZEN_STAGES = 2  # encoder stem + stages 1-2 (1/2 and 1/4 resolution) fixed: a cheaper backward
# No encoder warm-up by default: a warm-up step (decoder and head on fixed encoder features) costs
# about 40 % of a full one, but at equal wall clock the runs that spent 60 % or 90 % of their time
# in it ended with worse held-out pixel IoU and F1 on the Arctic folds than runs that trained the
# encoder from the first step (docs/TRAINING.md, "The encoder warm-up at equal wall clock").
# encoder_warmup_share stays a setting; the bundled recipe (model/bundled_recipe.py) dropped its 75 % in v3.1.0.
FINE_TUNE_ENCODER_WARMUP_SHARE = 0.0
FINE_TUNE_VALIDATE_EVERY_S_CPU = 120.0  # validation costs steps; score at most every 2 min (and at the end)
FINE_TUNE_VALIDATE_EVERY_S_CUDA = 30.0
