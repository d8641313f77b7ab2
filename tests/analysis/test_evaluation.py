"""Accuracy scoring: exact hand-built cases, the real ARTS Starting-vs-GroundTruth case, and
`make evaluate` against an independent brute-force count under the paper's rule."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import fiona
import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box, shape

from thaw_slump_mapper.analysis.evaluation import (
    EVALUATED_LAYER,
    MISSED_LAYER,
    ap_iou_sweep,
    ap_score_ranked,
    evaluate_layers,
    one_to_one_scores,
    paper_rule_scores,
    paper_sweep_thresholds,
    pixel_iou,
    vector_pixel_iou,
)
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.engine.vector_io import PolygonFeature, read_polygons, reproject_geometry, write_polygons

REPO = Path(__file__).resolve().parents[2]
EPSG_3413 = "EPSG:3413"
SCHEMA = {"id": "int", "score_mean": "float"}


def _write(path: Path, geoms, crs=EPSG_3413, scores=None) -> Path:
    crs_wkt = fiona.crs.CRS.from_user_input(crs).to_wkt() if crs else ""
    feats = [
        PolygonFeature(g, {"id": i + 1, "score_mean": (scores[i] if scores else 0.5)}) for i, g in enumerate(geoms)
    ]
    write_polygons(path, path.stem, feats, crs_wkt, SCHEMA)
    return path


def _grid_boxes(n: int, size: float = 100.0, spacing: float = 300.0, dx: float = 0.0):
    side = int(np.ceil(np.sqrt(n)))
    return [box(dx + (i % side) * spacing, (i // side) * spacing, dx + (i % side) * spacing + size, (i // side) * spacing + size) for i in range(n)]


# ---------------------------------------------------------------- hand-built, exact


def test_identical_layers_score_perfectly():
    refs = _grid_boxes(5)
    for scores in (paper_rule_scores(refs, refs), one_to_one_scores(refs, refs)):
        assert (scores.tp, scores.fp, scores.fn) == (5, 0, 0)
        assert scores.precision == scores.recall == scores.f1 == 1.0
    assert vector_pixel_iou(refs, refs) == pytest.approx(1.0)
    assert ap_iou_sweep(refs, refs) == pytest.approx(1.0)
    assert ap_score_ranked(refs, [0.9] * 5, refs) == pytest.approx(1.0)


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_shifted_layers_cross_the_threshold_where_iou_says(tmp_path):
    refs = _grid_boxes(4)
    # A 100 m box shifted by dx has IoU (100 - dx) / (100 + dx): 20 m -> 0.667, 40 m -> 0.429.
    near = paper_rule_scores(_grid_boxes(4, dx=20.0), refs)
    far = paper_rule_scores(_grid_boxes(4, dx=40.0), refs)
    assert (near.tp, near.fp, near.fn) == (4, 0, 0)
    assert (far.tp, far.fp, far.fn) == (0, 4, 4)
    assert vector_pixel_iou(_grid_boxes(4, dx=20.0), refs) == pytest.approx(80 / 120)

    det_path = _write(tmp_path / "dets.gpkg", _grid_boxes(4, dx=40.0)[:2] + _grid_boxes(4, dx=20.0)[2:])
    ref_path = _write(tmp_path / "refs.gpkg", refs)
    out_layers = tmp_path / "eval.gpkg"
    summary = evaluate_layers(det_path, ref_path, tmp_path / "s.json", out_layers)
    assert summary["paper"] == {"tp": 2, "fp": 2, "fn": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert json.loads((tmp_path / "s.json").read_text())["paper"]["tp"] == 2
    evaluated = read_polygons(out_layers, EVALUATED_LAYER).features
    assert [f.properties["match"] for f in evaluated] == ["FP", "FP", "TP", "TP"]
    assert [f.properties["iou"] for f in evaluated] == pytest.approx([60 / 140, 60 / 140, 80 / 120, 80 / 120])
    assert [f.properties["ref_id"] for f in evaluated] == [1, 2, 3, 4]
    missed = read_polygons(out_layers, MISSED_LAYER).features
    assert sorted(f.properties["ref_id"] for f in missed) == [1, 2]
    # Rerunning replaces the derived evaluation layers rather than refusing.
    evaluate_layers(det_path, ref_path, None, out_layers)


def test_split_slump_gives_one_tp_and_one_fp():
    ref = [box(0, 0, 100, 100)]
    split = [box(0, 0, 60, 100), box(60, 0, 100, 100)]  # IoU 0.6 and 0.4
    paper = paper_rule_scores(split, ref)
    assert (paper.tp, paper.fp, paper.fn) == (1, 1, 0)
    one = one_to_one_scores(split, ref)
    assert (one.tp, one.fp, one.fn) == (1, 1, 0)
    assert vector_pixel_iou(split, ref) == pytest.approx(1.0)  # area agrees perfectly
    # Exact halves sit on the threshold: neither half is a TP (IoU must exceed 0.5), and the
    # reference is not an FN either (its best IoU is not below 0.5) - the paper's rule as written.
    halves = paper_rule_scores([box(0, 0, 50, 100), box(50, 0, 100, 100)], ref)
    assert (halves.tp, halves.fp, halves.fn) == (0, 2, 0)


def test_merged_slump_gives_one_fp_and_two_fn():
    refs = [box(0, 0, 100, 100), box(110, 0, 210, 100)]
    merged = [box(0, 0, 210, 100)]  # IoU with each: 10000 / 21000 = 0.476
    paper = paper_rule_scores(merged, refs)
    assert (paper.tp, paper.fp, paper.fn) == (0, 1, 2)
    assert vector_pixel_iou(merged, refs) == pytest.approx(20000 / 21000)
    # At a looser threshold the merged polygon counts and both references are found.
    loose = paper_rule_scores(merged, refs, iou_threshold=0.45)
    assert (loose.tp, loose.fp, loose.fn) == (1, 0, 0)
    one = one_to_one_scores(merged, refs, iou_threshold=0.45)
    assert (one.tp, one.fp, one.fn) == (1, 0, 1)  # one-to-one still misses the second slump


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_empty_layers(tmp_path):
    refs = _grid_boxes(3)
    none = paper_rule_scores([], refs)
    assert (none.tp, none.fp, none.fn, none.precision, none.recall, none.f1) == (0, 0, 3, 0.0, 0.0, 0.0)
    only_dets = paper_rule_scores(refs, [])
    assert (only_dets.tp, only_dets.fp, only_dets.fn) == (0, 3, 0)
    assert ap_iou_sweep([], refs) == 0.0
    empty_path = _write(tmp_path / "empty.gpkg", [])
    summary = evaluate_layers(empty_path, _write(tmp_path / "refs.gpkg", refs), tmp_path / "s.json", tmp_path / "e.gpkg")
    assert summary["paper"]["fn"] == 3 and summary["one_to_one"]["fn"] == 3
    assert summary["pixel_iou"] == 0.0
    assert len(read_polygons(tmp_path / "e.gpkg", MISSED_LAYER).features) == 3
    both = evaluate_layers(empty_path, empty_path, None)
    assert both["paper"] == {"tp": 0, "fp": 0, "fn": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_ap_definitions():
    assert paper_sweep_thresholds()[:3] == [1.0, 0.96, 0.92] and paper_sweep_thresholds()[-1] == 0.0
    assert len(paper_sweep_thresholds()) == 26
    refs = [box(0, 0, 100, 100)]
    # One TP at IoU 0.667 and one FP far away: recall jumps 0 -> 1 at threshold 0.64, where precision is 0.5.
    dets = [box(20, 0, 120, 100), box(1000, 0, 1100, 100)]
    assert ap_iou_sweep(dets, refs) == pytest.approx(0.5)
    # Score-ranked: the top-scored detection is wrong, then two right ones:
    # (0.5 - 0) * 1/2 + (1 - 0.5) * 2/3.
    refs2 = [box(0, 0, 100, 100), box(300, 0, 400, 100)]
    dets2 = [box(1000, 0, 1100, 100), box(0, 0, 100, 100), box(300, 0, 400, 100)]
    assert ap_score_ranked(dets2, [0.9, 0.8, 0.7], refs2) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert ap_score_ranked(dets2, [0.1, 0.8, 0.7], refs2) == pytest.approx(1.0)


def test_pixel_iou_masks():
    pred = np.zeros((4, 4), bool)
    ref = np.zeros((4, 4), bool)
    pred[:2, :2] = True
    ref[:2, :] = True
    assert pixel_iou(pred, ref) == pytest.approx(4 / 8)
    valid = np.ones((4, 4), bool)
    valid[:, 2:] = False  # the part the prediction missed is nodata
    assert pixel_iou(pred, ref, valid) == pytest.approx(1.0)
    assert pixel_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_reprojection_repair_and_negatives(tmp_path, shared_data):
    gt_path = shared_data / "arctic_rts_chips" / "GroundTruth_Final.geojson"
    gt = read_polygons(gt_path)
    subset = [f.geometry for f in gt.features[:40]]
    ref_3413 = _write(tmp_path / "ref3413.gpkg", subset)
    ref_4326 = _write(tmp_path / "ref4326.gpkg", [reproject_geometry(g, gt.crs_wkt, "EPSG:4326") for g in subset], crs="EPSG:4326")
    summary = evaluate_layers(ref_3413, ref_4326, None)
    assert summary["paper"]["tp"] == 40 and summary["paper"]["fn"] == 0
    assert summary["pixel_iou"] > 0.999  # only edge densification differs after reprojection

    bowtie = Polygon([(0, 0), (100, 100), (100, 0), (0, 100), (0, 0)])
    assert not bowtie.is_valid
    dets = _write(tmp_path / "bow.geojson", [bowtie, box(500, 0, 600, 100)])
    refs = _write(tmp_path / "r.geojson", [box(0, 0, 100, 100), box(500, 0, 600, 100)])
    summary = evaluate_layers(dets, refs, None)
    assert summary["repaired"] == {"detections": 1, "reference": 0}
    assert summary["paper"]["tp"] == 1

    # ARTS-style negatives in a reference layer are not slumps to be found.
    with_negative = tmp_path / "neg.geojson"
    feats = [PolygonFeature(box(0, 0, 100, 100), {"TrainClass": "Positive"}), PolygonFeature(box(900, 0, 1000, 100), {"TrainClass": "Negative"})]
    write_polygons(with_negative, "neg", feats, fiona.crs.CRS.from_user_input(EPSG_3413).to_wkt(), {"TrainClass": "str"})
    summary = evaluate_layers(_write(tmp_path / "d.gpkg", [box(0, 0, 100, 100)]), with_negative, None)
    assert summary["n_references"] == 1 and summary["reference_negatives_ignored"] == 1 and summary["paper"]["fn"] == 0


def test_bad_input_is_a_user_error(tmp_path):
    refs = _write(tmp_path / "refs.gpkg", _grid_boxes(2))
    no_crs = _write(tmp_path / "nocrs.shp", _grid_boxes(2), crs=None)  # GeoJSON would imply WGS 84
    with pytest.raises(UserError, match="coordinate reference system"):
        evaluate_layers(no_crs, refs, None)
    with pytest.raises(UserError, match="not found"):
        evaluate_layers(tmp_path / "missing.gpkg", refs, None)
    with pytest.raises(UserError, match="GeoPackage"):
        evaluate_layers(refs, refs, None, tmp_path / "out.shp")


def test_thousands_of_polygons_are_fast():
    refs = _grid_boxes(5000)
    dets = _grid_boxes(5000, dx=10.0) + _grid_boxes(500, dx=150.0)  # 5000 TPs, 500 stray FPs
    started = time.perf_counter()
    scores = paper_rule_scores(dets, refs)
    ap = ap_iou_sweep(dets, refs)
    elapsed = time.perf_counter() - started
    assert (scores.tp, scores.fp, scores.fn) == (5000, 500, 0)
    assert 0 < ap < 1
    assert elapsed < 10.0, f"scoring 5500 x 5000 polygons took {elapsed:.1f} s"


# ---------------------------------------------------------------- real data, independent count


def _brute_force_paper_counts(det_path: Path, ref_path: Path, threshold: float = 0.5):
    """The paper's rule by a plain double loop over shapely intersections (no STRtree)."""

    def load(path):
        geoms = []
        with fiona.open(str(path)) as src:
            for feat in src:
                g = shape(feat.geometry)
                if not g.is_valid:
                    g = shapely.make_valid(g)
                    g = shapely.union_all([p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")])
                geoms.append(g)
        return geoms

    dets, refs = load(det_path), load(ref_path)
    best_det = [0.0] * len(dets)
    best_ref = [0.0] * len(refs)
    for i, d in enumerate(dets):
        for j, r in enumerate(refs):
            inter = d.intersection(r).area
            if inter <= 0:
                continue
            iou = inter / (d.area + r.area - inter)
            best_det[i] = max(best_det[i], iou)
            best_ref[j] = max(best_ref[j], iou)
    tp = sum(v > threshold for v in best_det)
    return tp, len(dets) - tp, sum(v < threshold for v in best_ref)


def test_make_evaluate_on_real_polygons_matches_brute_force(tmp_path, shared_data):
    folder = shared_data / "arctic_rts_chips"
    starting, truth = folder / "Starting_Polygons.geojson", folder / "GroundTruth_Final.geojson"
    out = tmp_path / "summary.json"
    env = dict(os.environ, SHARED=str(shared_data.parent))
    proc = subprocess.run(
        ["make", "-s", "evaluate", f"DETECTIONS={starting}", f"REFERENCE={truth}", f"OUTPUT={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    tp, fp, fn = _brute_force_paper_counts(starting, truth)
    assert (summary["paper"]["tp"], summary["paper"]["fp"], summary["paper"]["fn"]) == (tp, fp, fn)
    # The worked example in docs/EVALUATION.md (398 machine outlines vs 300 expert-corrected ones,
    # the data as grown on 2026-11-28).
    assert (tp, fp, fn) == (192, 206, 142)
    assert summary["n_detections"] == 398 and summary["n_references"] == 300
    assert summary["repaired"] == {"detections": 4, "reference": 0}
    assert summary["one_to_one"]["tp"] == 158
    assert summary["pixel_iou"] == pytest.approx(0.5479, abs=1e-3)
    assert summary["ap_iou_sweep"] == pytest.approx(0.4579, abs=1e-3)
    assert summary["ap_score"] is None  # ARTS polygons carry no model score
    # Ground truth against itself is perfect, by the same independent count.
    tp2, fp2, fn2 = _brute_force_paper_counts(truth, truth)
    assert (tp2, fp2, fn2) == (300, 0, 0)


def test_cli_reports_bad_input_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "thaw_slump_mapper", "evaluate", str(tmp_path / "a.gpkg"), str(tmp_path / "b.gpkg"), str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_processing_algorithms_run_in_qgis(qgis_processing, tmp_path, shared_data):
    """Both algorithms through processing.run, registered on a throwaway provider (the
    plugin's own provider is tested where it is built)."""
    import processing
    from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingProvider

    from thaw_slump_mapper.processing_provider.evaluate_algorithm import EvaluateAlgorithm
    from thaw_slump_mapper.processing_provider.export_labels_algorithm import ExportLabelsAlgorithm

    class _Provider(QgsProcessingProvider):
        def id(self):
            return "thawslumpreviewtest"

        def name(self):
            return "review test"

        def loadAlgorithms(self):  # noqa: N802
            self.addAlgorithm(EvaluateAlgorithm())
            self.addAlgorithm(ExportLabelsAlgorithm())

    provider = _Provider()
    assert QgsApplication.processingRegistry().addProvider(provider)
    try:
        folder = shared_data / "arctic_rts_chips"
        result = processing.run(
            "thawslumpreviewtest:evaluate",
            {"DETECTIONS": str(folder / "Starting_Polygons.geojson"), "REFERENCE": str(folder / "GroundTruth_Final.geojson"),
             "OUTPUT": str(tmp_path / "s.json"), "OUTPUT_LAYER": str(tmp_path / "m.gpkg")},
        )
        assert (result["TP"], result["FP"], result["FN"]) == (192, 206, 142)
        assert len(read_polygons(tmp_path / "m.gpkg", MISSED_LAYER).features) == 142
        chip = next((folder / "chips").glob("8f47ab65*.tif"))
        result = processing.run(
            "thawslumpreviewtest:export_labels",
            {"IMAGE": str(chip), "LABELS": str(folder / "GroundTruth_Final.geojson"), "OUTPUT": str(tmp_path / "chips"),
             "GSD": 2.0, "CHIP_SIZE": 64},
        )
        assert result["N_CHIPS"] >= 1 and (tmp_path / "chips" / "manifest.csv").exists()
        far = _write(tmp_path / "far.gpkg", [box(0, 0, 10, 10)])
        with pytest.raises(QgsProcessingException, match="falls on"):
            processing.run("thawslumpreviewtest:export_labels", {"IMAGE": str(chip), "LABELS": str(far), "OUTPUT": str(tmp_path / "x"), "GSD": 2.0})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
