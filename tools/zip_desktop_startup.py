"""Run inside the QGIS desktop (qgis --code) by tools/zip_desktop_screenshots.py: the plugin as
installed from the zip, no torch. Detect on the demo scene through the dock, then save three
pictures (dock with the torch offer, Review tab, the shipped model in the modeler) and quit.
Every outcome ends with one line in TSM_STATUS, so an unattended run never hangs."""
import os
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.utils import iface, plugins

STATUS = Path(os.environ["TSM_STATUS"])
IMAGES = Path(os.environ["TSM_IMAGES"])
OUTPUT_DIR = Path(os.environ["TSM_OUTPUT_DIR"])
state = {"tries": 0, "notes": []}


def finish(message: str) -> None:
    STATUS.write_text(message + "\n")
    QgsProject.instance().setDirty(False)
    os._exit(0)  # no "save project?" dialog under Xvfb


def guarded(function):
    def run(*args):
        try:
            function(*args)
        except Exception:  # noqa: BLE001 - report and quit instead of hanging
            finish("ERROR " + traceback.format_exc().replace("\n", " | "))

    return run


def save(widget, name: str) -> None:
    picture = widget.grab()
    path = IMAGES / name
    if not picture.save(str(path)):
        finish(f"ERROR cannot save {path}")
    state["notes"].append(f"{name} {picture.width()}x{picture.height()}")


@guarded
def start() -> None:
    state["tries"] += 1
    plugin = plugins.get("thaw_slump_mapper")
    rasters = [layer for layer in QgsProject.instance().mapLayers().values() if isinstance(layer, QgsRasterLayer)]
    if plugin is None or not rasters:
        if state["tries"] > 120:
            finish(f"ERROR plugin loaded: {plugin is not None}, raster layers: {len(rasters)}")
        QTimer.singleShot(500, start)
        return
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        finish("ERROR torch is importable: this run must show the light install")
    state["plugin_file"] = plugin.__class__.__module__
    iface.mainWindow().resize(1600, 1000)
    iface.mainWindow().showMaximized()
    dock = plugin.show_dock()
    iface.mainWindow().resizeDocks([dock], [460], Qt.Horizontal)
    state["dock"] = dock
    dock.raster_combo.setLayer(rasters[0])
    dock.output_widget.setFilePath(str(OUTPUT_DIR / "zip_demo.gpkg"))
    dock.detection_finished.connect(detected)
    if dock.start_detection() is None:
        finish("ERROR the dock did not start: " + dock.log_view.toPlainText().replace("\n", " | "))


@guarded
def detected(outcome) -> None:
    if outcome.error or outcome.result is None:
        finish(f"ERROR detection: {outcome.error}")
        return
    dock = state["dock"]
    if dock.install_offer.full_frame.isHidden():
        finish("ERROR the torch offer is not shown")
    state["summary"] = f"{outcome.result.n_slumps} slumps on {outcome.result.device_name}"
    from qgis.PyQt.QtWidgets import QScrollArea

    scroll = dock.install_offer.full_frame.parent()
    while scroll is not None and not isinstance(scroll, QScrollArea):
        scroll = scroll.parent()
    if scroll is not None:
        scroll.ensureWidgetVisible(dock.install_offer.full_frame)  # the torch offer sits below the log
    canvas = iface.mapCanvas()
    canvas.setExtent(canvas.fullExtent())
    canvas.refresh()
    QTimer.singleShot(4000, shoot_dock)


@guarded
def shoot_dock() -> None:
    iface.mapCanvas().waitWhileRendering()
    save(iface.mainWindow(), "qgis_dock_light.png")
    dock = state["dock"]
    dock.tabs.setCurrentWidget(dock.review_panel)
    dock.review_panel.set_layer(dock.last_layers[0])
    dock.review_panel.next_unreviewed()
    QTimer.singleShot(3000, shoot_review)


@guarded
def shoot_review() -> None:
    iface.mapCanvas().waitWhileRendering()
    save(iface.mainWindow(), "qgis_review_tab.png")
    from processing.modeler.ModelerDialog import ModelerDialog

    model = QgsApplication.processingRegistry().createAlgorithmById("thawslump:detect_describe_report")
    if model is None:
        finish("ERROR the shipped model is not registered")
    dialog = ModelerDialog.create(model)
    dialog.resize(1300, 800)
    dialog.show()
    state["modeler"] = dialog
    QTimer.singleShot(3000, shoot_modeler)


@guarded
def shoot_modeler() -> None:
    save(state["modeler"], "qgis_modeler.png")
    finish(f"OK {state['summary']}; " + "; ".join(state["notes"]))


QTimer.singleShot(1000, start)
