"""Fine-tuning: a tiny model learns generated slumps, and every bad input gets its UserError."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from thaw_slump_mapper.core.checkpoint import build_network, load_checkpoint
from thaw_slump_mapper.core.chip_format import MANIFEST_NAME, load_chip_folder
from thaw_slump_mapper.core.errors import Cancelled, UserError
from thaw_slump_mapper.core.progress import Progress
from thaw_slump_mapper.model.early_stopping import cancelled_best_path
from thaw_slump_mapper.model.training import fine_tune
from thaw_slump_mapper.model.training_steps import evaluate_pixels
from thaw_slump_mapper.tests.checkpoints import make_tiny_checkpoint
from thaw_slump_mapper.tests.training_helpers import make_chip_folder

QUICK = dict(batch_size=4, crop_size=64, steps_per_epoch=5, calibration_chips=2, threads=2)


@pytest.fixture(scope="module")
def chip_folder(tmp_path_factory) -> Path:
    return make_chip_folder(tmp_path_factory.mktemp("chips") / "chips")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("base") / "tiny.pt", gsd_m=2.0, tile_size=64, overlap=16)


def _loss_on_chips(ckpt, folder: Path) -> float:
    chips = load_chip_folder(folder, len(ckpt.bands), ckpt.bands)
    return evaluate_pixels(build_network(ckpt), chips, 2.0, ckpt.scaling, "cpu")["val_loss"]


def test_fine_tune_lowers_loss_and_records_provenance(tmp_path, chip_folder, tiny):
    out = tmp_path / "tuned.pt"
    result = fine_tune([chip_folder], out, base_checkpoint=tiny, epochs=3, learning_rate=3e-3, device="cpu", **QUICK)
    before = _loss_on_chips(load_checkpoint(tiny), chip_folder)
    tuned = load_checkpoint(out)
    after = _loss_on_chips(tuned, chip_folder)
    assert after < before - 0.05, (before, after)
    prov = tuned.provenance
    assert prov["trained"] is True
    assert "tiny-test-model" in prov["parent"] and tiny.name in prov["parent"]
    assert prov["training_data"] == [{"folder": str(chip_folder.resolve()), "chips": 8}]
    assert prov["n_val_chips"] == 2  # the manifest's val rows
    for key in ("val_pixel_iou", "val_f1", "val_precision", "val_recall"):
        assert 0.0 <= prov["metrics"][key] <= 1.0
    assert tuned.gsd_m == 2.0  # the data's GSD
    assert 0.0 < tuned.threshold < 1.0 and tuned.min_area_m2 >= 0.0
    assert result.checkpoint_path == out and result.n_train == 6


def test_gsd_follows_the_data_and_16_bit_chips_train(tmp_path, tiny):
    folder = make_chip_folder(tmp_path / "s2", n_chips=4, size=48, gsd=10.0, dtype="uint16", val_rows=1)
    fine_tune([folder], tmp_path / "s2.pt", base_checkpoint=tiny, epochs=1, device="cpu", **dict(QUICK, steps_per_epoch=2))
    assert load_checkpoint(tmp_path / "s2.pt").gsd_m == 10.0


def test_cancel_keeps_best_so_far_clearly_named(tmp_path, chip_folder, tiny):
    calls = {"n": 0}

    def cancel_after_a_while() -> bool:
        calls["n"] += 1
        return calls["n"] > 6  # after the first epoch and its validation

    out = tmp_path / "cancelled.pt"
    with pytest.raises(Cancelled, match="cancelled-best"):
        fine_tune([chip_folder], out, base_checkpoint=tiny, epochs=5, device="cpu",
                  progress=Progress(None, cancel_after_a_while), **dict(QUICK, steps_per_epoch=3))
    assert not out.exists()
    kept = cancelled_best_path(out)
    assert kept.name == "cancelled.cancelled-best.pt"
    assert load_checkpoint(kept).state_dict


def test_empty_folder(tmp_path, tiny):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no manifest.csv"):
        fine_tune([tmp_path / "empty"], tmp_path / "x.pt", base_checkpoint=tiny)
    with open(tmp_path / "empty" / MANIFEST_NAME, "w") as fh:
        fh.write("image,mask,split,slump_pixels,source,gsd\n")
    with pytest.raises(UserError, match="lists no chips"):
        fine_tune([tmp_path / "empty"], tmp_path / "x.pt", base_checkpoint=tiny)


def test_mask_that_does_not_match_its_image(tmp_path, tiny):
    folder = make_chip_folder(tmp_path / "bad", n_chips=2, size=48, mask_size=40, val_rows=0)
    with pytest.raises(UserError, match="does not match its image"):
        fine_tune([folder], tmp_path / "x.pt", base_checkpoint=tiny)


def test_bands_the_base_model_cannot_take(tmp_path, tiny):
    folder = make_chip_folder(tmp_path / "fourband", n_chips=2, size=48, bands=4, val_rows=0)
    with pytest.raises(UserError, match="4 band.*takes 3 \\(red/green/blue\\)"):
        fine_tune([folder], tmp_path / "x.pt", base_checkpoint=tiny)


def test_missing_chip_file_and_bad_output(tmp_path, chip_folder, tiny):
    folder = tmp_path / "copy"
    shutil.copytree(chip_folder, folder)
    (folder / "images" / "chip_000.tif").unlink()
    with pytest.raises(UserError, match="missing"):
        fine_tune([folder], tmp_path / "x.pt", base_checkpoint=tiny)
    with pytest.raises(UserError, match=r"\.pt"):
        fine_tune([chip_folder], tmp_path / "x.onnx", base_checkpoint=tiny)


def test_no_slump_pixels(tmp_path, tiny):
    folder = make_chip_folder(tmp_path / "noslump", n_chips=2, size=48, val_rows=0)
    import rasterio

    for mask in (folder / "masks").glob("*.tif"):
        with rasterio.open(mask, "r+") as dst:
            dst.write(np.zeros((48, 48), np.uint8), 1)
    with pytest.raises(UserError, match="No chip holds a slump"):
        fine_tune([folder], tmp_path / "x.pt", base_checkpoint=tiny)


def test_best_weights_keep_the_best_epoch_and_count_patience():
    from thaw_slump_mapper.model.early_stopping import BestWeights

    best = BestWeights(patience=2)
    snapshots = iter(["first", "better", "tie-lower-loss"])
    best.update({"val_pixel_iou": 0.30, "val_loss": 0.9}, lambda: next(snapshots))
    best.update({"val_pixel_iou": 0.40, "val_loss": 1.5}, lambda: next(snapshots))  # higher IoU wins despite the loss
    assert best.state == "better" and best.epochs_without_gain == 0
    best.update({"val_pixel_iou": 0.39995, "val_loss": 1.2}, lambda: next(snapshots))  # an IoU tie: the lower loss wins
    assert best.state == "tie-lower-loss" and best.metrics["val_loss"] == 1.2
    best.update({"val_pixel_iou": 0.39, "val_loss": 0.1}, lambda: pytest.fail("a worse epoch must not be kept"))
    assert best.epochs_without_gain == 1 and not best.patience_exhausted()
    best.update({"val_pixel_iou": 0.40, "val_loss": 1.3}, lambda: pytest.fail("a tie with a higher loss is no gain"))
    assert best.patience_exhausted()


def test_learning_rate_warms_up_then_follows_a_cosine():
    from thaw_slump_mapper.model.training_settings import TrainSettings
    from thaw_slump_mapper.model.training_steps import scheduled_learning_rate

    settings = TrainSettings(learning_rate=1e-3, warmup_steps=10)
    assert scheduled_learning_rate(settings, 0, 0.0) == pytest.approx(1e-4)
    assert scheduled_learning_rate(settings, 9, 0.0) == pytest.approx(1e-3)
    assert scheduled_learning_rate(settings, 50, 0.5) == pytest.approx(5e-4)
    assert scheduled_learning_rate(settings, 99, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_early_stopping_ends_the_run_and_says_so(tmp_path, chip_folder, tiny):
    result = fine_tune([chip_folder], tmp_path / "p0.pt", base_checkpoint=tiny, epochs=4, device="cpu", patience=0, validate_every_s=0,
                       **dict(QUICK, calibration_chips=1))
    assert len(result.history) == 1
    assert load_checkpoint(tmp_path / "p0.pt").provenance["recipe"]["stopped"] == "early stopping"
