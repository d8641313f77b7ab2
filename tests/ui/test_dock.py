"""The Detect thaw slumps dock in real QGIS 3.22: rendering, a full run, and a cancel."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from qgis.core import Qgis, QgsProject, QgsRasterLayer, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QImage

from thaw_slump_mapper.core.file_names import probability_path
from thaw_slump_mapper.ui.detect_runner import next_free_output
from thaw_slump_mapper.ui.dock import SETTINGS_PREFIX, DetectDock

from ..plugin_helpers import chip_layer

RUN_TIMEOUT_MS = 120_000


@pytest.fixture()
def dock(qgis_app, qgis_iface, qgis_new_project, qtbot):
    # pytest-qgis's iface.addDockWidget does nothing, so the dock is shown on its own.
    widget = DetectDock(qgis_iface)
    widget.resize(420, 900)
    widget.show()
    yield widget
    if widget.task is not None:
        widget.task.cancel()
        qtbot.waitUntil(lambda: widget.task is None, timeout=RUN_TIMEOUT_MS)
    widget.close()
    widget.deleteLater()
    # The dock remembers its inputs in QgsSettings; do not leave test values for a real user.
    QgsSettings().remove(SETTINGS_PREFIX.rstrip("/"))


def _prepare(dock: DetectDock, layer: QgsRasterLayer, checkpoint: Path, output: Path, threshold: float = 0.05) -> None:
    QgsProject.instance().addMapLayer(layer)
    dock.raster_combo.setLayer(layer)
    dock.checkpoint_widget.setFilePath(str(checkpoint))
    assert dock.checkpoint is not None, dock.checkpoint_info.text()
    dock.set_bands([1, 2, 3])  # chips are RGB + a mask band
    dock.threshold_spin.setValue(threshold)
    dock.min_area_spin.setValue(0)
    dock.device_combo.setCurrentText("cpu")
    dock.output_widget.setFilePath(str(output))


def test_dock_renders_offscreen(dock, chip_paths, tiny_checkpoint, tmp_path, qtbot):
    _prepare(dock, chip_layer(chip_paths[0]), tiny_checkpoint, tmp_path / "out.gpkg")
    qtbot.wait(50)
    png = tmp_path / "dock.png"
    assert dock.grab().save(str(png))
    image = QImage(str(png))
    assert image.width() >= 300 and image.height() >= 500
    # A blank grab has one colour; a drawn form has text, frames and widgets.
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20
    # The checkpoint description and the band rows are filled from checkpoint and layer.
    assert "tiny-test-model" in dock.checkpoint_info.text() and "GSD 2 m" in dock.checkpoint_info.text()
    assert dock.band_form.rowCount() == 3
    assert dock.device_label.text() in ("CPU",) or dock.device_label.text().startswith("CUDA")


def test_default_output_never_overwrites(tmp_path):
    first = next_free_output(tmp_path, "thaw_slumps_chip")
    assert first.name == "thaw_slumps_chip_001.gpkg"
    first.write_bytes(b"")
    second = next_free_output(tmp_path, "thaw_slumps_chip")
    assert second.name == "thaw_slumps_chip_002.gpkg"
    probability_path(second).write_bytes(b"")  # a leftover raster also blocks a name
    assert next_free_output(tmp_path, "thaw_slumps_chip").name == "thaw_slumps_chip_003.gpkg"


def test_dock_run_adds_styled_layers_in_a_group(dock, qgis_iface, chip_paths, tiny_checkpoint, tmp_path, qtbot):
    layer = chip_layer(chip_paths[0], "chip_a")
    output = tmp_path / "result.gpkg"
    _prepare(dock, layer, tiny_checkpoint, output)
    with qtbot.waitSignal(dock.detection_finished, timeout=RUN_TIMEOUT_MS) as finished:
        task = dock.start_detection()
        assert task is not None and dock.is_running()
        assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    outcome = finished.args[0]
    assert outcome.error is None and not outcome.cancelled, outcome.error
    assert output.is_file() and probability_path(output).is_file()

    group = QgsProject.instance().layerTreeRoot().findGroup("chip_a")
    assert group is not None
    layers = [node.layer() for node in group.findLayers()]
    assert len(layers) == 2
    polygons, probability = layers
    assert isinstance(polygons, QgsVectorLayer) and polygons.isValid()
    assert isinstance(probability, QgsRasterLayer) and probability.isValid()
    assert polygons.featureCount() == outcome.result.n_slumps > 0
    assert polygons.dataProvider().capabilities() & polygons.dataProvider().ChangeGeometries  # editable
    assert probability.renderer().type() == "singlebandpseudocolor"

    # The style lives in the GeoPackage and comes back when the file is opened again.
    with sqlite3.connect(output) as db:
        rows = db.execute("select f_table_name, useAsDefault from layer_styles").fetchall()
    assert ("thaw_slumps", 1) in rows
    reopened = QgsVectorLayer(f"{output}|layername=thaw_slumps", "again", "ogr")
    symbol_layer = reopened.renderer().symbol().symbolLayer(0)
    assert symbol_layer.brushStyle() == Qt.NoBrush
    assert reopened.labelsEnabled()

    successes = qgis_iface.messageBar().get_messages(Qgis.Success)
    assert any(f"{outcome.result.n_slumps} thaw slumps" in m for m in successes)
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert dock.progress_bar.value() == 100
    assert dock.report_button.isEnabled()


@pytest.fixture()
def big_scene(chip_paths, tmp_path) -> Path:
    """1024 x 1024 px of real chip imagery (4 x 4 chips): long enough to cancel mid-run."""
    import rasterio

    with rasterio.open(chip_paths[0]) as src:
        data = src.read()
        profile = src.profile
        transform = src.transform
    tiled = np.tile(data, (1, 4, 4))
    profile.update(width=tiled.shape[2], height=tiled.shape[1], transform=transform)
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(tiled)
    return path


def test_cancel_mid_run_leaves_nothing(dock, qgis_iface, big_scene, tiny_checkpoint, tmp_path, qtbot):
    output = tmp_path / "cancelled.gpkg"
    _prepare(dock, chip_layer(big_scene, "scene"), tiny_checkpoint, output)
    layers_before = set(QgsProject.instance().mapLayers())
    reached = []

    def cancel_once_inference_runs(value: float) -> None:
        # Runs in the worker thread (direct connection), so the cancel lands mid-inference,
        # exactly as a click on Cancel does between two batches.
        if 5.0 < value and not reached:
            reached.append(value)
            task.cancel()

    with qtbot.waitSignal(dock.detection_finished, timeout=RUN_TIMEOUT_MS) as finished:
        task = dock.start_detection()
        task.progressChanged.connect(cancel_once_inference_runs, Qt.DirectConnection)
    outcome = finished.args[0]
    assert reached and reached[0] < 90.0, "the run ended before it could be cancelled"
    assert outcome.cancelled and outcome.result is None
    assert set(QgsProject.instance().mapLayers()) == layers_before
    assert QgsProject.instance().layerTreeRoot().findGroup("scene") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"], "a cancelled run left files behind"
    assert any("cancelled" in m for m in qgis_iface.messageBar().get_messages(Qgis.Info))
    assert dock.run_button.isEnabled() and not dock.is_running()


def test_cancel_button_stops_the_task(dock, big_scene, tiny_checkpoint, tmp_path, qtbot):
    _prepare(dock, chip_layer(big_scene, "scene"), tiny_checkpoint, tmp_path / "button.gpkg")
    with qtbot.waitSignal(dock.detection_finished, timeout=RUN_TIMEOUT_MS) as finished:
        dock.run_button.click()
        assert dock.is_running()
        qtbot.mouseClick(dock.cancel_button, Qt.LeftButton)
    assert finished.args[0].cancelled
    assert not (tmp_path / "button.gpkg").exists()


def test_missing_package_is_reported_not_raised(qgis_app, qgis_iface, qgis_new_project, monkeypatch, tmp_path):
    """A QGIS without one of the engine's packages: the dock says so and offers the install."""
    from thaw_slump_mapper.ui import dependency_check

    monkeypatch.setattr(
        dependency_check, "REQUIRED_PACKAGES", dependency_check.REQUIRED_PACKAGES + (("no_such_package_tsm", "no-such-package-tsm"),)
    )
    monkeypatch.setenv("THAW_SLUMP_MAPPER_DEPS", str(tmp_path / "deps"))
    monkeypatch.setattr(dependency_check.missing_packages, "__defaults__", (dependency_check.REQUIRED_PACKAGES,))
    widget = DetectDock(qgis_iface)
    try:
        assert not widget.install_offer.dependency_frame.isHidden()
        assert "no_such_package_tsm" in widget.install_offer.dependency_label.text()
        assert str(tmp_path / "deps") in widget.install_offer.dependency_label.text()
        assert not widget.run_button.isEnabled()
        command = dependency_check.pip_install_command(["no-such-package-tsm"], dependency_check.managed_site_dir())
        assert command[1:4] == ["-m", "pip", "install"] and command[command.index("--target") + 1].startswith(str(tmp_path / "deps"))
    finally:
        widget.close()
        widget.deleteLater()
