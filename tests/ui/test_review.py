"""Review workflow in a real QGIS 3.22: edits set the review field, originals are kept."""
from __future__ import annotations

from pathlib import Path

import pytest
from shapely import wkt as shapely_wkt
from shapely.geometry import box

from thaw_slump_mapper.analysis import review
from thaw_slump_mapper.engine.detect import DETECTION_SCHEMA
from thaw_slump_mapper.engine.vector_io import PolygonFeature, read_polygons, write_polygons

EPSG_32608 = (
    'PROJCS["WGS 84 / UTM zone 8N",'
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
    'UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-135],'
    'PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],'
    'UNIT["metre",1],AUTHORITY["EPSG","32608"]]'
)
SCORES = {1: 0.91, 2: 0.55, 3: 0.62, 4: 0.78}


# ---------------------------------------------------------------- pure rules


def test_rules_cover_every_transition():
    assert review.after_geometry_change("unreviewed") == "edited"
    assert review.after_geometry_change("confirmed") == "edited"
    assert review.after_geometry_change("added") == "added"
    assert review.after_geometry_change("rejected") == "rejected"
    assert review.after_add() == "added"
    assert review.after_confirm("unreviewed") == "confirmed"
    assert review.after_confirm("rejected") == "confirmed"
    assert review.after_confirm("edited") == "edited"
    assert review.after_reject("added") == "rejected"
    assert review.normalise_state(None) == "unreviewed"
    assert review.normalise_state("NULL") == "unreviewed"
    assert review.training_class("rejected") == "negative"
    assert review.training_class("edited") == "positive"
    assert review.training_class("unreviewed", unreviewed="ignore") == "ignore"


def test_review_order_is_lowest_score_first_and_skips_reviewed():
    items = [(1, "unreviewed", 0.9), (2, "confirmed", 0.1), (3, "unreviewed", 0.3), (4, None, None), (5, "unreviewed", 0.3)]
    assert review.review_order(items) == [4, 3, 5, 1]


# ---------------------------------------------------------------- real QGIS


def _detection_layer(path: Path) -> Path:
    features = []
    for fid, score in SCORES.items():
        geom = box(500000 + fid * 200, 7000000, 500000 + fid * 200 + 100, 7000100)
        features.append(
            PolygonFeature(
                geom,
                {
                    "id": fid, "score_mean": score, "score_max": score + 0.05, "area_m2": geom.area, "perimeter_m": geom.length,
                    "model": "test 0.0.1", "source": "synthetic.tif", "created": "2024-01-01T00:00:00",
                    "review": "unreviewed", "orig_score": score, "orig_wkt": geom.wkt,
                },
            )
        )
    write_polygons(path, "thaw_slumps", features, EPSG_32608, DETECTION_SCHEMA)
    return path


def _by_id(path: Path):
    return {f.properties["id"]: f for f in read_polygons(path, "thaw_slumps").features}


@pytest.fixture()
def detection_gpkg(tmp_path: Path) -> Path:
    return _detection_layer(tmp_path / "detections.gpkg")


def test_edit_add_reject_in_qgis_sets_review_and_keeps_originals(qgis_app, qgis_new_project, detection_gpkg):
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer

    from thaw_slump_mapper.ui.review_panel import ReviewPanel
    from thaw_slump_mapper.ui.review_tracker import ProjectReviewTracking

    layer = QgsVectorLayer(f"{detection_gpkg}|layername=thaw_slumps", "slumps", "ogr")
    assert layer.isValid()
    project = QgsProject.instance()
    tracking = ProjectReviewTracking(project)
    project.addMapLayer(layer)
    tracker = tracking.tracker_for(layer)
    assert tracker is not None and tracker.connected

    fid_of = {f["id"]: f.id() for f in layer.getFeatures()}
    assert layer.startEditing()
    # 1: move a vertex of slump 1 -> edited
    assert layer.moveVertex(500000 + 200 - 30.0, 7000000 - 20.0, fid_of[1], 0)
    # 2: draw a new slump -> added
    new = QgsFeature(layer.fields())
    corners = [(501500, 7000000), (501600, 7000000), (501600, 7000080), (501500, 7000000)]
    new.setGeometry(QgsGeometry.fromPolygonXY([[QgsPointXY(x, y) for x, y in corners]]))
    new["id"] = 99
    assert layer.addFeature(new)
    # 3: reject slump 2 through the panel (keeps the feature)
    panel = ReviewPanel(project=project)
    panel.set_layer(layer)
    layer.selectByIds([fid_of[2]])
    assert panel.reject_selected() == 1
    # 4: confirm slump 4, then reshape the added one (it must stay 'added')
    layer.selectByIds([fid_of[4]])
    assert panel.confirm_selected() == 1
    assert layer.commitChanges(), layer.commitErrors()

    saved = _by_id(detection_gpkg)
    assert set(saved) == {1, 2, 3, 4, 99}  # nothing deleted: the rejected slump is kept
    assert saved[1].properties["review"] == "edited"
    assert saved[2].properties["review"] == "rejected"
    assert saved[3].properties["review"] == "unreviewed"
    assert saved[4].properties["review"] == "confirmed"
    assert saved[99].properties["review"] == "added"
    # The moved vertex is in the saved outline, and the model's own outline and score are untouched.
    assert not saved[1].geometry.equals(shapely_wkt.loads(saved[1].properties["orig_wkt"]))
    assert saved[1].geometry.area != pytest.approx(100 * 100)
    for fid in (1, 2, 3, 4):
        assert saved[fid].properties["orig_score"] == pytest.approx(SCORES[fid])
        original = box(500000 + fid * 200, 7000000, 500000 + fid * 200 + 100, 7000100)
        assert shapely_wkt.loads(saved[fid].properties["orig_wkt"]).equals(original)
    assert saved[99].properties["orig_score"] is None and saved[99].properties["orig_wkt"] is None

    # Reshaping an added feature keeps it 'added'; reshaping a rejected one keeps it 'rejected'.
    new_fid = next(f.id() for f in layer.getFeatures() if f["id"] == 99)
    assert layer.startEditing()
    assert layer.moveVertex(501550.0, 7000010.0, new_fid, 0)
    assert layer.moveVertex(500400.0, 6999990.0, fid_of[2], 0)
    assert layer.commitChanges(), layer.commitErrors()
    saved = _by_id(detection_gpkg)
    assert saved[99].properties["review"] == "added"
    assert saved[2].properties["review"] == "rejected"

    # Removing the layer from the project disconnects the tracker: later edits are not tracked.
    project.removeMapLayer(layer.id())
    assert not tracker.connected
    tracking.stop()


def test_panel_walks_unreviewed_lowest_score_first_and_zooms(qgis_app, qgis_new_project, detection_gpkg):
    from qgis.core import QgsProject, QgsVectorLayer
    from qgis.gui import QgsMapCanvas

    from thaw_slump_mapper.ui.review_panel import ReviewPanel, apply_review_style

    layer = QgsVectorLayer(f"{detection_gpkg}|layername=thaw_slumps", "slumps", "ogr")
    project = QgsProject.instance()
    project.addMapLayer(layer)
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.resize(400, 300)
    panel = ReviewPanel(canvas=canvas, project=project)
    panel.set_layer(layer)
    fid_by_id = {f["id"]: f.id() for f in layer.getFeatures()}
    visited = []
    for _ in range(len(SCORES)):
        fid = panel.next_unreviewed()
        assert layer.selectedFeatureIds() == [fid]
        assert canvas.extent().contains(layer.getFeature(fid).geometry().boundingBox())
        visited.append(fid)
        panel.confirm_selected()  # not in editing mode: saved at once
    assert visited == [fid_by_id[i] for i in (2, 3, 4, 1)]  # scores 0.55, 0.62, 0.78, 0.91
    assert panel.next_unreviewed() is None
    assert all(f.properties["review"] == "confirmed" for f in _by_id(detection_gpkg).values())

    apply_review_style(layer)
    rules = {r.label(): r.filterExpression() for r in layer.renderer().rootRule().children()}
    assert set(rules) == set(review.REVIEW_STATES)
    rejected_symbol = next(r for r in layer.renderer().rootRule().children() if r.label() == "rejected").symbol()
    assert rejected_symbol.symbolLayer(0).strokeStyle() != 1  # not a solid outline (Qt.SolidLine == 1)
    project.removeMapLayer(layer.id())
