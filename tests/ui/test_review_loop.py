"""The review-to-model loop in one place, in real QGIS 3.22: detect on a real chip, walk the
slumps with the review tab's keys (confirm, reject, next, previous), see score, area and state,
keep the progress across closing and reopening the project, export training labels from the
tab's prefilled parameters, fine-tune a few steps on them, and detect again with the result."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QApplication

from thaw_slump_mapper.analysis import review
from thaw_slump_mapper.core.checkpoint import load_checkpoint
from thaw_slump_mapper.ui.review_panel import SHORTCUTS, ReviewPanel

from ..plugin_helpers import register_provider

REPO = Path(__file__).resolve().parents[2]
CHIP_BANDS = "1,2,3"


@pytest.fixture(scope="module")
def provider(qgis_processing):
    return register_provider()


@pytest.fixture()
def detected(provider, tmp_path):
    """The bundled model on the Sentinel-2 demo scene: 11 real detections to review (v3.1.0)."""
    import processing

    image = tmp_path / "scene.tif"
    shutil.copy(REPO / "demo" / "peel_plateau_s2_20210821_rgb.tif", image)
    gpkg = tmp_path / "slumps.gpkg"
    processing.run("thawslump:detect", {"INPUT": str(image), "OUTPUT": str(gpkg), "PROBABILITY": None})
    return image, gpkg


def _press(qtbot, panel: ReviewPanel, action: str) -> None:
    """A real key press on the focused review tab (the shortcut is WidgetWithChildrenShortcut)."""
    QApplication.setActiveWindow(panel)  # offscreen Qt activates no window by itself
    panel.setFocus()
    qtbot.keyClick(panel, SHORTCUTS[action])


def _state_counts(layer: QgsVectorLayer) -> dict:
    counts: dict = {}
    for feature in layer.getFeatures():
        state = review.normalise_state(feature["review"])
        counts[state] = counts.get(state, 0) + 1
    return counts


def test_review_export_fine_tune_detect_again(qgis_app, qgis_new_project, qtbot, detected, tiny_checkpoint, tmp_path):
    import processing

    image, gpkg = detected
    project = QgsProject.instance()
    raster = QgsRasterLayer(str(image), "scene", "gdal")
    layer = QgsVectorLayer(str(gpkg), "slumps", "ogr")
    assert layer.isValid()
    project.addMapLayers([raster, layer])
    total = layer.featureCount()
    assert total >= 5, "the bundled model v3.1.0 finds 11 slumps on the demo scene"
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.resize(400, 300)
    panel = ReviewPanel(canvas=canvas, project=project, checkpoint_path=lambda: str(tiny_checkpoint))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_layer(layer)

    _press(qtbot, panel, "next")
    first = panel.current_fid
    assert first is not None and layer.selectedFeatureIds() == [first]
    assert canvas.extent().contains(layer.getFeature(first).geometry().boundingBox())
    detail = panel.detail_label.text()
    assert "score 0." in detail and " ha" in detail and "unreviewed" in detail
    _press(qtbot, panel, "confirm")  # confirms the first and moves on
    second = panel.current_fid
    assert second != first and layer.getFeature(first)["review"] == "confirmed"
    _press(qtbot, panel, "reject")
    assert layer.getFeature(second)["review"] == "rejected"
    _press(qtbot, panel, "previous")
    assert panel.current_fid == second and "rejected" in panel.detail_label.text()
    assert panel.progress() == (2, total) and panel.progress_bar.value() == 2

    # Edit one outline (the tracker's job in the desktop; here the rule it applies).
    third = next(f.id() for f in layer.getFeatures() if review.normalise_state(f["review"]) == review.UNREVIEWED)
    layer.startEditing()
    layer.changeGeometry(third, layer.getFeature(third).geometry().buffer(2.0, 2))
    layer.changeAttributeValue(third, layer.fields().indexOf("review"), review.after_geometry_change(layer.getFeature(third)["review"]))
    assert layer.commitChanges()
    assert panel.progress() == (3, total)

    # Close and reopen the project: the tab comes back on the layer, with the progress.
    project_file = tmp_path / "review.qgz"
    assert project.write(str(project_file))
    project.clear()
    assert panel.current_layer() is None
    assert project.read(str(project_file))
    reopened = project.mapLayersByName("slumps")[0]
    assert panel.current_layer() is not None and panel.current_layer().id() == reopened.id()
    assert panel.progress() == (3, total) and panel.progress_bar.value() == 3
    assert _state_counts(reopened) == {"confirmed": 1, "rejected": 1, "edited": 1, "unreviewed": total - 3}

    # Export training labels with the tab's own parameters (the dialog opens prefilled).
    parameters = panel.export_parameters()
    assert parameters["LABELS"].id() == reopened.id() and parameters["IMAGE"].name() == "scene"
    assert parameters["OUTPUT"].endswith("slumps_training_chips") and parameters["CHECKPOINT"] == str(tiny_checkpoint)
    # (The dialog itself, panel.open_export_labels(), needs the desktop's iface.browserModel(),
    # which pytest-qgis's stub lacks; the same parameters go to processing.run here.)
    assert panel.export_button.isEnabled() and not panel.fine_tune_button.isEnabled()
    exported = processing.run("thawslump:export_labels", dict(parameters, BANDS=CHIP_BANDS, CHIP_SIZE=64, BUFFER=20.0))
    panel.export_finished(True, exported)
    assert panel.fine_tune_button.isEnabled()
    assert exported["N_CHIPS"] >= 2

    # Fine-tune a few steps on them (from the small checkpoint the panel was given, to stay
    # fast on 2 cores), then detect again with the new checkpoint.
    tuned = tmp_path / "tuned.pt"
    train = dict(panel.fine_tune_parameters(), EPOCHS=1, MAX_MINUTES=0.5, OUTPUT=str(tuned))
    assert train["DATA"] == parameters["OUTPUT"] and train["BASE"] == str(tiny_checkpoint)
    processing.run("thawslump:train", train)
    assert load_checkpoint(tuned).provenance["parent"].startswith("tiny-test-model")
    again = tmp_path / "again.gpkg"
    processing.run("thawslump:detect", {"INPUT": str(image), "CHECKPOINT": str(tuned), "BANDS": CHIP_BANDS,
                                        "THRESHOLD": 0.05, "MIN_AREA": 0, "OUTPUT": str(again), "PROBABILITY": None})
    redone = QgsVectorLayer(str(again), "again", "ogr")
    assert redone.isValid() and "score_mean" in redone.fields().names()
    models = {f["model"] for f in redone.getFeatures()}
    assert models <= {f"{load_checkpoint(tuned).name} v{load_checkpoint(tuned).version}"}, models
    project.removeAllMapLayers()
