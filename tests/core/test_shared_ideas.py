"""The ideas written once (issue 14): each shared helper does what its former copies did.

Plain Python, no QGIS and no data: the helpers are small, so are their tests.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from thaw_slump_mapper.analysis.morphometry import MORPHOMETRY_FIELDS, merged_fields
from thaw_slump_mapper.analysis.review import is_negative_label
from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, checkpoint_or_bundled
from thaw_slump_mapper.core.devices import NO_CUDA_MESSAGE, check_device, cuda_name, resolve_device
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.core.file_names import DEFAULT_LAYER, probability_path
from thaw_slump_mapper.core.union_find import UnionFind
from thaw_slump_mapper.engine.batch.worker import probability_file, scene_file
from thaw_slump_mapper.engine.detect import DetectionResult
from thaw_slump_mapper.engine.tiling import fit_tile_and_overlap


def test_union_find_joins_chains_and_roots_at_the_smallest_id():
    sets = UnionFind(range(6))
    sets.union(4, 2)
    sets.union(2, 5)
    sets.union(1, 0)
    assert sets.groups(range(6)) == {0: [0, 1], 2: [2, 4, 5], 3: [3]}
    for member in (2, 4, 5):
        sets.remove(member)
    assert sets.groups([0, 1, 3]) == {0: [0, 1], 3: [3]}


def test_probability_file_name_rule_serves_detection_and_batch(tmp_path):
    out = tmp_path / "slumps.gpkg"
    assert probability_path(out) == tmp_path / "slumps_probability.tif"
    assert probability_path(out, DEFAULT_LAYER) == tmp_path / "slumps_probability.tif"
    assert probability_path(out, "second run/2") == tmp_path / "slumps_second_run_2_probability.tif"
    assert probability_file(tmp_path, "scene_a") == tmp_path / "scene_a_probability.tif"
    assert probability_file(tmp_path, "scene_a") == probability_path(scene_file(tmp_path, "scene_a"))


def test_device_choices_are_checked_in_one_place():
    assert check_device(None) == "auto" and check_device("CUDA:1") == "cuda:1"
    with pytest.raises(UserError, match="Unknown device 'tpu'; use auto, cpu or cuda."):
        resolve_device("tpu")
    assert resolve_device("cpu") == "cpu"
    if cuda_name() is None:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(UserError) as caught:
            resolve_device("cuda")
        assert str(caught.value) == NO_CUDA_MESSAGE
    else:
        assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("shape, expected", [
    ((2000, 1500), (512, 128)),  # large image: the checkpoint's tile and overlap
    ((100, 90), (128, 32)),  # small: the tile shrinks to a multiple of 32, the overlap to a quarter of it
    ((10, 10), (32, 8)),
])
def test_tile_and_overlap_fitting(shape, expected):
    assert fit_tile_and_overlap(shape[0], shape[1], 512, 128) == expected


def test_negative_label_test_reads_arts_train_class():
    assert is_negative_label({"TrainClass": " Negative "})
    assert not is_negative_label({"TrainClass": "Positive"})
    assert not is_negative_label({"TrainClass": None}) and not is_negative_label({})


def test_morphometry_merge_replaces_recomputed_fields_and_keeps_the_rest():
    recomputed = next(iter(MORPHOMETRY_FIELDS))
    merged = merged_fields({"id": 7, recomputed: -1.0, "review": "confirmed"}, {recomputed: 2.5})
    assert merged == {"id": 7, "review": "confirmed", recomputed: 2.5}


def test_an_empty_checkpoint_choice_means_the_bundled_one(tmp_path):
    assert checkpoint_or_bundled(None) == checkpoint_or_bundled("") == bundled_checkpoint_path()
    assert checkpoint_or_bundled(str(tmp_path / "mine.pt")) == tmp_path / "mine.pt"
    assert bundled_checkpoint_path().parent == Path(__file__).resolve().parents[2] / "model" / "weights"


def test_detection_summary_is_one_line_for_every_front_end():
    result = DetectionResult(features=[], crs_wkt="", output_path=None, layer_name=DEFAULT_LAYER, probability_path=None,
                             checkpoint_summary="", device_name="CPU", backend="onnxruntime", n_slumps=3,
                             total_area_m2=12_345.0, elapsed_s=4.26)
    assert result.summary() == "3 thaw slumps, 1.23 ha in 4.3 s on CPU"


@pytest.mark.parametrize("command", [["detect", "in.tif", "out.gpkg"], ["export-labels", "in.tif", "labels.gpkg", "chips"]])
def test_one_band_list_parser_one_message_and_no_traceback(command, tmp_path, monkeypatch, capsys):
    """export-labels once parsed --bands inside argparse, so a bad list was a traceback."""
    from thaw_slump_mapper.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([*command, "--bands", "1,x"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: Bands must be 1-based band numbers separated by commas, like 1,2,3 (got '1,x').")
    assert list(tmp_path.iterdir()) == []  # nothing written
