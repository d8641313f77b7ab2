"""The dock's Change tab: two layers picked, run as a background task, layers added by class."""
from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsCategorizedSymbolRenderer, QgsProject, QgsVectorLayer

from ..change_helpers import EARLIER_DATE, LATER_DATE, build_truth, write_truth

RUN_TIMEOUT_MS = 120_000


@pytest.fixture()
def dock(qgis_app, qgis_iface, qgis_new_project, qtbot):
    from qgis.core import QgsSettings

    from thaw_slump_mapper.ui.dock import SETTINGS_PREFIX, DetectDock

    widget = DetectDock(qgis_iface)
    widget.show()
    yield widget
    widget.close()
    widget.deleteLater()
    QgsSettings().remove(SETTINGS_PREFIX.rstrip("/"))


def _layers(shared_data, folder):
    earlier, later = write_truth(build_truth(shared_data), folder)
    layers = [QgsVectorLayer(f"{p}|layername=slumps", p.stem, "ogr") for p in (earlier, later)]
    QgsProject.instance().addMapLayers(layers)
    return layers


def test_change_tab_runs_in_the_background_and_adds_styled_layers(dock, qgis_iface, shared_data, tmp_path, qtbot):
    panel = dock.change_panel
    assert dock.tabs.tabText(dock.tabs.indexOf(panel)) == "Change"
    earlier, later = _layers(shared_data, tmp_path)
    panel.earlier_combo.setLayer(earlier)
    panel.later_combo.setLayer(later)
    panel.earlier_date.setText(EARLIER_DATE)
    panel.later_date.setText(LATER_DATE)
    panel.output_widget.setFilePath(str(tmp_path / "dock_change.gpkg"))
    with qtbot.waitSignal(panel.change_finished, timeout=RUN_TIMEOUT_MS) as finished:
        assert panel.start() is not None
        assert not panel.run_button.isEnabled()  # the task runs; the map stays usable
    assert finished.args[0].error is None
    names = [layer.name() for layer in panel.last_layers]
    assert names == ["Growth areas", "Not seen again", "Change by class"]
    change = panel.last_layers[-1]
    assert change.isValid() and change.featureCount() == later.featureCount()
    renderer = change.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "change_class"
    assert {c.value() for c in renderer.categories()} >= {"repeat", "new", "merged", "split"}
    assert all(QgsProject.instance().mapLayer(layer.id()) is not None for layer in panel.last_layers)
    assert any("merged" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))


def test_change_tab_says_what_is_missing(dock, shared_data, tmp_path):
    panel = dock.change_panel
    earlier, later = _layers(shared_data, tmp_path)
    panel.earlier_combo.setLayer(earlier)
    panel.later_combo.setLayer(later)
    panel.earlier_date.setText(EARLIER_DATE)
    panel.output_widget.setFilePath(str(tmp_path / "x.gpkg"))
    assert panel.start() is None
    assert "date for both layers" in panel.status.text()
