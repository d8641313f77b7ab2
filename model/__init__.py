"""Network checkpoints, the training-chip format, training and fine-tuning. No QGIS, no Qt."""
