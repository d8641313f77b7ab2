"""processing.run("thawslump:train") in real QGIS 3.22: a checkpoint comes out, bad input is one line."""
from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException

from thaw_slump_mapper.core.checkpoint import load_checkpoint
from thaw_slump_mapper.tests.checkpoints import make_tiny_checkpoint
from thaw_slump_mapper.tests.training_helpers import make_chip_folder

from ..plugin_helpers import register_provider


@pytest.fixture(scope="module")
def provider(qgis_processing):
    return register_provider()


def test_train_algorithm_writes_a_fine_tuned_checkpoint(provider, tmp_path):
    import processing

    folder = make_chip_folder(tmp_path / "chips", n_chips=5, size=48, val_rows=1)
    base = make_tiny_checkpoint(tmp_path / "base.pt", tile_size=64, overlap=16)
    out = tmp_path / "tuned.pt"
    result = processing.run(
        "thawslump:train",
        {"DATA": str(folder), "BASE": str(base), "EPOCHS": 2, "LEARNING_RATE": 1e-3, "MAX_MINUTES": 2.0, "OUTPUT": str(out)},
    )
    assert result["OUTPUT"] == str(out)
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["parent"].startswith("tiny-test-model") and ckpt.provenance["n_val_chips"] == 1
    assert "threshold" in result["SUMMARY"]
    assert ckpt.gsd_m == 2.0  # no working pixel size given: the chips' own


def test_train_algorithm_trains_at_the_working_pixel_size_given(provider, tmp_path):
    import processing

    folder = make_chip_folder(tmp_path / "chips", n_chips=5, size=48, val_rows=1)
    base = make_tiny_checkpoint(tmp_path / "base.pt", tile_size=64, overlap=16)
    out = tmp_path / "coarse.pt"
    processing.run("thawslump:train", {"DATA": str(folder), "BASE": str(base), "EPOCHS": 1, "GSD": 4.0, "OUTPUT": str(out)})
    ckpt = load_checkpoint(out)
    assert ckpt.gsd_m == 4.0 and ckpt.provenance["recipe"]["gsd_m"] == 4.0


def test_train_algorithm_reports_bad_input(provider, tmp_path):
    import processing

    (tmp_path / "empty").mkdir()
    base = make_tiny_checkpoint(tmp_path / "base.pt")
    with pytest.raises(QgsProcessingException, match="no manifest.csv"):
        processing.run("thawslump:train", {"DATA": str(tmp_path / "empty"), "BASE": str(base), "OUTPUT": str(tmp_path / "x.pt")})


def test_train_algorithm_takes_precision_and_seed(provider, tmp_path):
    import processing

    from thaw_slump_mapper.core.devices import DEVICE_CHOICES
    from thaw_slump_mapper.model.precision import PRECISION_CHOICES

    folder = make_chip_folder(tmp_path / "chips", n_chips=5, size=48, val_rows=1)
    base = make_tiny_checkpoint(tmp_path / "base.pt", tile_size=64, overlap=16)
    out = tmp_path / "fp32.pt"
    processing.run("thawslump:train", {"DATA": str(folder), "BASE": str(base), "EPOCHS": 1, "OUTPUT": str(out),
                                       "PRECISION": PRECISION_CHOICES.index("fp32"), "SEED": 5})
    recipe = load_checkpoint(out).provenance["recipe"]
    assert recipe["precision_used"] == "fp32" and recipe["seed"] == 5
    with pytest.raises(QgsProcessingException, match="fp16 training runs on CUDA only"):
        processing.run("thawslump:train", {"DATA": str(folder), "BASE": str(base), "EPOCHS": 1, "OUTPUT": str(tmp_path / "fp16.pt"),
                                           "PRECISION": PRECISION_CHOICES.index("fp16"), "DEVICE": DEVICE_CHOICES.index("cpu")})
