"""The QGIS plugin object: a toolbar button and menu entry that open the dock, and the provider.

Nothing here imports torch, and the constructor touches no widget, so ``classFactory(None)``
works in headless ``qgis_process`` (which then calls ``initProcessing`` only).
"""
from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog

from .ui.dependency_check import activate_managed_site_dir

PLUGIN_DIR = Path(__file__).resolve().parent
MENU_NAME = "&Thaw Slump Mapper"
ACTION_TEXT = "Detect thaw slumps"
LOG_TAG = "Thaw Slump Mapper"


def keep_triton_out_of_qgis() -> None:
    """Make ``import triton`` fail inside QGIS, so torch runs without it.

    torch imports triton (torch._dynamo -> triton) when torchvision loads. Inside the QGIS
    desktop, loading triton's bundled LLVM crashed QGIS with a segmentation fault (seen under
    Xvfb with QGIS 3.22.16 and torch 2.14.1; the Python stack ended in triton/knobs.py). The
    plugin never compiles kernels, and torch treats a failing triton import as "no triton".
    """
    sys.modules.setdefault("triton", None)


class ThawSlumpMapperPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.action = None
        self.toolbar = None
        self.dock = None
        self.review_tracking = None
        # Packages the user installed through the dock live in a folder the plugin manages.
        activate_managed_site_dir()
        keep_triton_out_of_qgis()

    # --- Processing (also called alone by qgis_process) -----------------------------------
    def initProcessing(self) -> None:  # noqa: N802 (QGIS's name)
        if self.provider is not None:
            return
        try:
            from .processing_provider.provider import ThawSlumpProvider

            provider = ThawSlumpProvider()
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider
        except Exception as err:  # a broken provider must not stop the plugin from loading
            QgsMessageLog.logMessage(f"Processing provider not registered: {err}", LOG_TAG, Qgis.Warning)

    # --- Desktop GUI ----------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802 (QGIS's name)
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        self.initProcessing()
        self.action = QAction(QIcon(str(PLUGIN_DIR / "icon.png")), ACTION_TEXT, self.iface.mainWindow())
        self.action.setObjectName("thawSlumpMapperDetectAction")
        self.action.setToolTip("Open the Detect thaw slumps dock")
        self.action.setCheckable(True)
        self.action.toggled.connect(self._toggle_dock)
        self.toolbar = self.iface.addToolBar("Thaw Slump Mapper")
        self.toolbar.setObjectName("ThawSlumpMapperToolbar")
        self.toolbar.addAction(self.action)
        self.iface.addPluginToMenu(MENU_NAME, self.action)
        # Keeps the `review` field of detection layers in step with the user's own edits.
        from qgis.core import QgsProject

        from .ui.review_tracker import ProjectReviewTracking

        self.review_tracking = ProjectReviewTracking(QgsProject.instance())

    def _toggle_dock(self, visible: bool) -> None:
        if visible:
            self.show_dock()
        elif self.dock is not None:
            self.dock.hide()

    def show_dock(self):
        """Create the dock on first use (this is where torch may first be imported)."""
        from qgis.PyQt.QtCore import Qt

        if self.dock is None:
            from .ui.dock import DetectDock

            self.dock = DetectDock(self.iface, parent=self.iface.mainWindow())
            self.dock.visibilityChanged.connect(self._dock_visibility_changed)
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.show()
        self.dock.raise_()
        self._dock_visibility_changed(True)
        return self.dock

    def _dock_visibility_changed(self, visible: bool) -> None:
        if self.action is not None and self.action.isChecked() != visible:
            self.action.blockSignals(True)
            self.action.setChecked(visible)
            self.action.blockSignals(False)

    def unload(self) -> None:
        if self.review_tracking is not None:
            self.review_tracking.stop()
            self.review_tracking = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.setParent(None)
            self.dock.deleteLater()
            self.dock = None
        if self.action is not None:
            self.iface.removePluginMenu(MENU_NAME, self.action)
            if self.toolbar is not None:
                self.toolbar.removeAction(self.action)
            self.action.deleteLater()
            self.action = None
        if self.toolbar is not None:
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
