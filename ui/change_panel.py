"""The dock's "Change" tab: pick an earlier and a later slump layer, run the change analysis as
a background task, and get the change layers in a group, coloured by class.

The work is analysis.change.compare_inventories, the function behind `make change`, the CLI
and thawslump:change; ChangeTask.run calls it in a worker thread and touches no layer.
"""
from __future__ import annotations

import traceback
from typing import Any, List, Optional

from qgis.core import Qgis, QgsApplication, QgsMapLayerProxyModel, QgsProject, QgsTask, QgsVectorLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..qgis_common.change_style import style_for_layer_name

# (GeoPackage layer, name in the layer tree); the summary is a table and stays in the file
SHOWN_LAYERS = (("growth_areas", "Growth areas"), ("not_seen_again", "Not seen again"), ("change", "Change by class"))


class ChangeTask(QgsTask):
    """compare_inventories in a worker thread; the panel reads ``result`` or ``error``."""

    def __init__(self, inputs: List[str], output: str, dates: Optional[str], on_done) -> None:
        super().__init__("Slumps through time", QgsTask.CanCancel)
        self.inputs, self.output, self.dates, self.on_done = inputs, output, dates, on_done
        self.result: Any = None
        self.error: Optional[str] = None

    def run(self) -> bool:  # worker thread
        try:
            from ..analysis.change import compare_inventories
            from ..core.errors import Cancelled, UserError
            from ..core.progress import Progress

            progress = Progress(lambda fraction, _: self.setProgress(100.0 * fraction), self.isCanceled)
            self.result = compare_inventories(self.inputs, self.output, dates=self.dates, progress=progress)
            return True
        except Cancelled:
            self.error = "Cancelled; the output was not touched."
        except UserError as err:
            self.error = str(err)
        except Exception as err:  # noqa: BLE001 - a task must never raise into QGIS
            self.error = f"Change analysis failed: {type(err).__name__}: {err}"
            QgsApplication.messageLog().logMessage(traceback.format_exc(), "Thaw Slump Mapper", Qgis.Critical)
        return False

    def finished(self, ok: bool) -> None:  # main thread
        self.on_done(self)


class ChangePanel(QWidget):
    change_finished = pyqtSignal(object)  # the ChangeTask

    def __init__(self, iface: Any = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.task: Optional[ChangeTask] = None
        self.last_layers: List[QgsVectorLayer] = []
        form = QFormLayout()
        self.earlier_combo, self.earlier_date = self._layer_row(form, "Earlier slumps")
        self.later_combo, self.later_date = self._layer_row(form, "Later slumps")
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoPackage (*.gpkg)")
        form.addRow("Output", self.output_widget)
        self.run_button = QPushButton("Compare")
        self.run_button.clicked.connect(self.start)
        self.progress_bar = QProgressBar()
        self.status = QLabel("Repeat, new, merged, split and not-seen-again slumps, and headwall retreat (docs/CHANGE.md).")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)

    @staticmethod
    def _layer_row(form: QFormLayout, label: str):
        combo = QgsMapLayerComboBox()
        combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        date = QLineEdit()
        date.setPlaceholderText("YYYY-MM-DD (empty: the layer's date field)")
        form.addRow(label, combo)
        form.addRow("Date", date)
        return combo, date

    def _dates(self) -> Optional[str]:
        dates = [self.earlier_date.text().strip(), self.later_date.text().strip()]
        if all(dates):
            return ",".join(dates)
        if any(dates):
            raise ValueError("Give a date for both layers, or for neither (then each needs a date field).")
        return None

    def start(self) -> Optional[ChangeTask]:
        from ..qgis_common.layer_adapters import vector_layer_file

        layers = [self.earlier_combo.currentLayer(), self.later_combo.currentLayer()]
        output = self.output_widget.filePath().strip()
        try:
            if None in layers or not output:
                raise ValueError("Choose an earlier layer, a later layer and an output GeoPackage.")
            dates = self._dates()
        except ValueError as err:
            self._show(str(err), Qgis.Warning)
            return None
        inputs = []
        for layer in layers:  # on the main thread: a memory layer is first saved to a file
            path, name = vector_layer_file(layer, _Feedback(self))
            inputs.append(f"{path}|layername={name}" if name else path)
        self.task = ChangeTask(inputs, output, dates, self._done)
        self.task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
        self.run_button.setEnabled(False)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _done(self, task: ChangeTask) -> None:
        self.task = None
        self.run_button.setEnabled(True)
        if task.result is None:
            self._show(task.error or "Change analysis failed.", Qgis.Critical)
        else:
            self._add_layers(task.result)
        self.change_finished.emit(task)

    def _add_layers(self, result: Any) -> None:
        project = QgsProject.instance()
        group = project.layerTreeRoot().insertGroup(0, f"Change {result.dates[0]} - {result.dates[-1]}")
        self.last_layers = []
        for layer_name, title in SHOWN_LAYERS:
            layer = QgsVectorLayer(f"{result.output_path}|layername={layer_name}", title, "ogr")
            style_for_layer_name(layer, layer_name)
            project.addMapLayer(layer, False)
            group.addLayer(layer)
            self.last_layers.append(layer)
        counts = result.counts
        self.progress_bar.setValue(100)
        self._show(f"{counts['repeat']} repeat, {counts['new']} new, {counts['merged']} merged, {counts['split']} split, "
                   f"{counts['not_seen_again']} not seen again ({result.elapsed_s:.0f} s)", Qgis.Success)

    def _show(self, text: str, level: int) -> None:
        self.status.setText(text)
        if self.iface is not None:
            self.iface.messageBar().pushMessage("Slumps through time", text, level, 8)

    def shutdown(self) -> None:
        if self.task is not None:
            self.task.cancel()


class _Feedback:
    """What vector_layer_file needs from a Processing feedback: somewhere to say things."""

    def __init__(self, panel: ChangePanel) -> None:
        self.panel = panel

    def pushInfo(self, text: str) -> None:  # noqa: N802
        self.panel.status.setText(text)
