"""Run inside the QGIS desktop (qgis --code): open the dock, detect on the demo scene, screenshot.

Started by tools/qgis_desktop.py --screenshot, which passes its settings in the environment
(TSM_SCREENSHOT, TSM_STATUS, TSM_OUTPUT_DIR, TSM_CHECKPOINT). Every outcome ends with a line
in TSM_STATUS and QGIS quitting, so an unattended run never hangs on a dialog.
"""
import faulthandler
import os
import traceback
from pathlib import Path

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.utils import iface, plugins

STATUS = Path(os.environ["TSM_STATUS"])
SCREENSHOT = Path(os.environ["TSM_SCREENSHOT"])
OUTPUT_DIR = Path(os.environ["TSM_OUTPUT_DIR"])
CHECKPOINT = os.environ.get("TSM_CHECKPOINT", "")
state = {"tries": 0, "dock": None}
# A crash in native code (GDAL, GEOS, torch) leaves the Python stacks of all threads here.
_fault_log = open(STATUS.with_name("faulthandler.txt"), "w")
faulthandler.enable(_fault_log, all_threads=True)


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
    iface.mainWindow().resize(1600, 1000)
    iface.mainWindow().showMaximized()
    dock = plugin.show_dock()
    iface.mainWindow().resizeDocks([dock], [430], Qt.Horizontal)
    state["dock"] = dock
    dock.raster_combo.setLayer(rasters[0])
    if CHECKPOINT:
        dock.checkpoint_widget.setFilePath(CHECKPOINT)
    dock.output_widget.setFilePath(str(OUTPUT_DIR / "thaw_slumps_demo.gpkg"))
    dock.detection_finished.connect(detected)
    if dock.start_detection() is None:
        finish("ERROR the dock did not start: " + dock.log_view.toPlainText().replace("\n", " | "))


@guarded
def detected(outcome) -> None:
    if outcome.error or outcome.result is None:
        finish(f"ERROR detection: {outcome.error}")
        return
    state["summary"] = f"{outcome.result.n_slumps} slumps, {outcome.result.total_area_m2 / 10000:.2f} ha"
    canvas = iface.mapCanvas()
    canvas.setExtent(state["dock"].last_layers[0].extent().buffered(60) if state["dock"].last_layers[0].featureCount() else canvas.fullExtent())
    canvas.refresh()
    QTimer.singleShot(4000, shoot)  # let the canvas render and the dock repaint


@guarded
def shoot() -> None:
    iface.mapCanvas().waitWhileRendering()
    picture = iface.mainWindow().grab()
    if not picture.save(str(SCREENSHOT)):
        finish(f"ERROR cannot save {SCREENSHOT}")
        return
    finish(f"OK {SCREENSHOT} ({picture.width()}x{picture.height()}); {state['summary']}")


QTimer.singleShot(1000, start)
