"""The "Detect thaw slumps" dock: pick an image, a checkpoint and an extent, run, get layers.

The dock assembles the tabs and wires them; each responsibility lives in its own module:
- the Detect form's widgets: ui.detect_form.DetectForm;
- run and result handling (form values -> DetectionRequest -> ui.detect_task.DetectTask ->
  layers): ui.detect_runner;
- the install offers (missing packages, torch for fine-tuning and CUDA): ui.install_offer;
- the Review tab: ui.review_panel.ReviewPanel; the Change tab: ui.change_panel.ChangePanel.
Follow-up actions: "Report..." opens thawslump:report, "Fine-tune..." opens thawslump:train.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

from qgis.core import Qgis, QgsMessageLog, QgsProject, QgsRasterLayer, QgsSettings
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from . import dependency_check
from .detect_form import EXTENT_WHOLE, DetectForm, checkpoint_summary
from .detect_runner import (
    DetectInputs,
    DetectRunner,
    add_result_layers,
    detection_request,
    layer_file,
    next_free_output,
    safe_stem,
)
from .detect_task import DetectTask
from .follow_up import (
    REPORT_ALGORITHM,
    TRAIN_ALGORITHM,
    fine_tune_parameters,
    fine_tuned_checkpoint,
    open_algorithm_dialog,
    report_parameters,
)
from .install_offer import InstallOffer

SETTINGS_PREFIX = "thaw_slump_mapper/dock/"
LOG_TAG = "Thaw Slump Mapper"


class DetectDock(QgsDockWidget, DetectForm):
    """Inputs, Run/Cancel, progress and log; adds the result layers when the task finishes."""

    # Emitted on the main thread after the result layers are in the project (tests, review panel).
    detection_finished = pyqtSignal(object)

    def __init__(self, iface: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__("Detect thaw slumps", parent)
        self.setObjectName("ThawSlumpMapperDetectDock")
        self.iface = iface
        self.settings = QgsSettings()
        self.runner = DetectRunner(self)
        self.install_offer = InstallOffer(self)
        self.last_result: Any = None
        self.last_layers: List[Any] = []
        self.checkpoint: Any = None
        self.review_panel: Any = None
        self._build()
        self._restore_settings()
        self.refresh_dependencies()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.addTab(self._detect_page(), "Detect")
        self._embed_review_panel()
        self._embed_change_panel()
        self.setWidget(self.tabs)
        self._connect_signals()

    def _detect_page(self) -> QScrollArea:
        detect_page = QWidget()
        page_layout = QVBoxLayout(detect_page)
        page_layout.addWidget(self.install_offer.dependency_frame)
        self.setup_detect_form(page_layout)
        page_layout.addWidget(self.install_offer.full_frame)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # a dock is narrow; wrap instead
        scroll.setWidget(detect_page)
        return scroll

    def _embed_review_panel(self) -> None:
        """The review panel (Confirm / Reject / next unreviewed) gets its own tab."""
        from .review_panel import ReviewPanel

        canvas = self.iface.mapCanvas() if self.iface is not None else None
        self.review_panel = ReviewPanel(parent=self, canvas=canvas, checkpoint_path=lambda: self.checkpoint_widget.filePath())
        self.tabs.addTab(self.review_panel, "Review")

    def _embed_change_panel(self) -> None:
        """Slumps through time (issue 13): two dated layers -> change layers styled by class."""
        from .change_panel import ChangePanel

        self.change_panel = ChangePanel(self.iface, parent=self)
        self.tabs.addTab(self.change_panel, "Change")

    def _connect_signals(self) -> None:
        self.raster_combo.layerChanged.connect(self._layer_changed)
        self.checkpoint_widget.fileChanged.connect(self._checkpoint_changed)
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        self.run_button.clicked.connect(self.start_detection)
        self.cancel_button.clicked.connect(self.cancel_detection)
        self.report_button.clicked.connect(self.open_report)
        self.fine_tune_button.clicked.connect(self.open_fine_tune)
        self.runner.progress.connect(self.progress_bar.setValue)
        self.runner.message.connect(self.log)
        self.runner.finished.connect(self._detection_done)
        self.install_offer.log.connect(self.log)
        self.install_offer.installed.connect(self._install_done)

    # ------------------------------------------------------------------ settings
    def _setting(self, key: str, default: Any = None, type_: type = str) -> Any:
        return self.settings.value(SETTINGS_PREFIX + key, default, type=type_)

    def _restore_settings(self) -> None:
        self.checkpoint_widget.setFilePath(self._setting("checkpoint", ""))
        mode = self._setting("extent_mode", EXTENT_WHOLE)
        self.extent_combo.setCurrentIndex(max(0, self.extent_combo.findData(mode)))
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findText(self._setting("device", "auto"))))
        active = self.iface.activeLayer() if self.iface is not None else None
        if isinstance(active, QgsRasterLayer):
            self.raster_combo.setLayer(active)
        self.extent_mode_changed()
        self._update_output_placeholder()

    def save_settings(self) -> None:
        values = {
            "checkpoint": self.checkpoint_widget.filePath(),
            "extent_mode": self.extent_combo.currentData(),
            "device": self.device_combo.currentText(),
            "threshold": self.threshold_spin.value(),
            "min_area_m2": self.min_area_spin.value(),
            "output_folder": str(self._output_folder()),
        }
        for key, value in values.items():
            self.settings.setValue(SETTINGS_PREFIX + key, value)

    # ------------------------------------------------------------------ dependencies
    def refresh_dependencies(self) -> List[dependency_check.MissingPackage]:
        missing = dependency_check.missing_packages()
        self.install_offer.show_missing(missing)
        self.run_button.setEnabled(not missing and not self.is_running())
        if not missing:
            self._checkpoint_changed(self.checkpoint_widget.filePath(), from_user=False)
            self._device_changed()
        else:
            self.checkpoint_info.setText("The checkpoint is read once the missing packages are installed.")
        return missing

    def _install_done(self) -> None:
        if self.refresh_dependencies():
            self.log("Some packages are still missing; restarting QGIS may be needed.")

    # ------------------------------------------------------------------ input reactions
    def _layer_changed(self, *_: Any) -> None:
        self.rebuild_band_boxes(self.checkpoint)
        self._update_output_placeholder()

    def _load_checkpoint(self, path_text: str) -> Any:
        from ..core.checkpoint import checkpoint_or_bundled
        from ..core.errors import UserError
        from ..engine.onnx_model import load_detection_checkpoint

        path = checkpoint_or_bundled(path_text)
        try:
            return load_detection_checkpoint(path)
        except UserError as err:
            self.checkpoint_info.setText(f"<span style='color:#c00'>{err}</span>")
            return None

    def _checkpoint_changed(self, path_text: str = "", from_user: bool = True) -> None:
        if dependency_check.missing_packages():
            return
        self.checkpoint = self._load_checkpoint(path_text)
        if self.checkpoint is not None:
            self.checkpoint_info.setText(checkpoint_summary(self.checkpoint))
            self._apply_checkpoint_defaults(from_user)
        self.rebuild_band_boxes(self.checkpoint)

    def _apply_checkpoint_defaults(self, from_user: bool) -> None:
        """The checkpoint's own threshold and minimum area, unless the user's last values are remembered."""
        ckpt = self.checkpoint
        remembered = not from_user and self.settings.contains(SETTINGS_PREFIX + "threshold")
        self.threshold_spin.setValue(self._setting("threshold", ckpt.threshold, float) if remembered else ckpt.threshold)
        self.min_area_spin.setValue(self._setting("min_area_m2", ckpt.min_area_m2, float) if remembered else ckpt.min_area_m2)

    def _device_changed(self, *_: Any) -> None:
        if dependency_check.missing_packages():
            return
        if self.device_combo.currentText() == "cuda" and dependency_check.missing_full_packages():
            self.device_label.setText("CUDA needs torch: install it with the button below.")
            return
        from ..core.errors import UserError

        try:
            from ..core.devices import describe_device

            self.device_label.setText(describe_device(self.device_combo.currentText()))
        except (UserError, ImportError) as err:
            self.device_label.setText(str(err))

    def _output_folder(self) -> Path:
        chosen = self.output_widget.filePath()
        if chosen:
            return Path(chosen).parent
        remembered = self._setting("output_folder", "")
        if remembered and Path(remembered).is_dir():
            return Path(remembered)
        home = QgsProject.instance().homePath()
        return Path(home) if home else Path.home() / "thaw_slump_mapper"

    def _output_stem(self) -> str:
        layer = self.raster_combo.currentLayer()
        return "thaw_slumps_" + safe_stem(layer.name() if layer is not None else "image")

    def _update_output_placeholder(self) -> None:
        self.output_widget.lineEdit().setPlaceholderText(
            f"{self._output_folder() / (self._output_stem() + '_NNN.gpkg')} (next free number)"
        )

    def resolved_output_path(self) -> Path:
        chosen = self.output_widget.filePath()
        if chosen:
            path = Path(chosen)
            return path if path.suffix.lower() == ".gpkg" else path.with_suffix(".gpkg")
        return next_free_output(self._output_folder(), self._output_stem())

    # ------------------------------------------------------------------ run
    @property
    def task(self) -> Optional[DetectTask]:
        return self.runner.task

    def is_running(self) -> bool:
        return self.runner.task is not None

    def detect_inputs(self) -> DetectInputs:
        """The form's values: what a run is asked to do."""
        return DetectInputs(
            image=self.raster_combo.currentLayer(),
            dem=self.dem_combo.currentLayer(),
            checkpoint=self.checkpoint,
            output_path=self.resolved_output_path(),
            bands=self.selected_bands(),
            extent_mode=self.extent_combo.currentData(),
            canvas=self.iface.mapCanvas() if self.iface is not None else None,
            extent_polygons=self.extent_layer_combo.currentLayer(),
            threshold=self.threshold_spin.value(),
            min_area_m2=self.min_area_spin.value(),
            device=self.device_combo.currentText(),
        )

    def start_detection(self) -> Optional[DetectTask]:
        if self.is_running():
            return None
        from ..core.errors import UserError

        inputs = self.detect_inputs()
        try:
            request = detection_request(inputs)
        except UserError as err:
            return self._cannot_run(err)
        self.save_settings()
        try:
            dem_path = layer_file(inputs.dem) if isinstance(inputs.dem, QgsRasterLayer) else None
        except UserError as err:  # a Qt slot must never raise: say it in one line
            return self._cannot_run(err)
        self._input_layer = inputs.image
        self._threshold = request.threshold
        self.progress_bar.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.log(f"Detecting in {inputs.image.name()} -> {request.output_path}")
        return self.runner.start(request, dem_path, inputs.image.name())

    def _cannot_run(self, err: Exception) -> None:
        self._message("Cannot run", str(err), Qgis.Warning)
        self.log(str(err))

    def cancel_detection(self) -> None:
        if self.is_running():
            self.cancel_button.setEnabled(False)
            self.runner.cancel()

    def _detection_done(self, outcome: Any) -> None:
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(not dependency_check.missing_packages())
        if outcome.cancelled:
            self.progress_bar.setValue(0)
            self.log("Cancelled; nothing was written.")
            self._message("Thaw slumps", "Detection cancelled; nothing was written.", Qgis.Info)
        elif outcome.error or outcome.result is None:
            self._show_failure(outcome)
        else:
            self._show_result(outcome.result, outcome.polygon_layer or outcome.result.layer_name)
            if outcome.morphometry_note:
                self.log(outcome.morphometry_note)
            self.output_widget.setFilePath("")  # the next run gets the next free name
            self._update_output_placeholder()
        self.detection_finished.emit(outcome)

    def _show_failure(self, outcome: Any) -> None:
        self.log(outcome.error or "Detection failed.")
        if outcome.details:
            self.log(outcome.details)
            QgsMessageLog.logMessage(outcome.details, LOG_TAG, Qgis.Critical)
        self._message("Thaw slumps", outcome.error or "Detection failed.", Qgis.Critical)

    def _show_result(self, result: Any, layer_name: str) -> None:
        layers = add_result_layers(result, layer_name, self._input_layer.name(), self._threshold, self.log)
        self.last_result = result
        self.last_layers = layers
        self.report_button.setEnabled(True)
        if self.review_panel is not None:
            self.review_panel.set_layer(layers[0])
        summary = result.summary()
        self.progress_bar.setValue(100)
        self.log(summary)
        self._message("Thaw slumps", summary, Qgis.Success)

    def _message(self, title: str, text: str, level: int) -> None:
        if self.iface is not None:
            self.iface.messageBar().pushMessage(title, text, level, 8)

    # ------------------------------------------------------------------ follow-up actions
    def _warn(self, text: str) -> None:
        self._message("Thaw slumps", text, Qgis.Warning)

    def open_report(self) -> Any:
        """The morphometry report for the last detection's polygons."""
        if not self.last_layers:
            return None
        parameters = report_parameters(self.last_layers[0], getattr(self, "_input_layer", None))
        return open_algorithm_dialog(REPORT_ALGORITHM, parameters, self._warn)

    def install_full(self, confirm: bool = True) -> bool:
        """Offer torch and segmentation-models-pytorch; True when they were missing."""
        return self.install_offer.install_full(confirm)

    def open_fine_tune(self) -> Any:
        """thawslump:train from the current checkpoint; the result becomes the checkpoint."""
        if self.install_full(confirm=True):  # training needs torch, installed on demand
            return None
        base = str(self.checkpoint.path) if self.checkpoint is not None and self.checkpoint.path else ""
        dialog = open_algorithm_dialog(TRAIN_ALGORITHM, fine_tune_parameters(base), self._warn)
        if dialog is not None and hasattr(dialog, "algorithmFinished"):
            dialog.algorithmFinished.connect(self._fine_tune_finished)
        return dialog

    def _fine_tune_finished(self, ok: bool, results: dict) -> None:
        new_checkpoint = fine_tuned_checkpoint(ok, results)
        if new_checkpoint:
            self.checkpoint_widget.setFilePath(new_checkpoint)
            self.log(f"Fine-tuned checkpoint selected: {new_checkpoint}")

    def shutdown(self) -> None:
        """Called by the plugin's unload: stop work and remember the settings."""
        self.save_settings()
        self.runner.cancel()
        if getattr(self, "change_panel", None) is not None:
            self.change_panel.shutdown()
        self.install_offer.cancel()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.save_settings()
        super().closeEvent(event)

