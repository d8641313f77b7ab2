"""The "Detect thaw slumps" dock: pick an image, a checkpoint and an extent, run, get layers.

The dock only collects inputs and shows results. The detection itself is
engine.detect.run_detection, run inside ui.detect_task.DetectTask (a QgsTask), the same
function the Processing algorithm and the command line call.

Hook points for other parts of the plugin (each wired only when its module is present):
- morphometry after detection when a DEM is chosen: DetectTask._morphometry
  (analysis.morphometry.compute_morphometry);
- "Report..." after a run: DetectDock.open_report (thawslump:report / analysis.report);
- "Fine-tune...": DetectDock.open_fine_tune (thawslump:train as a background task);
- the review panel: DetectDock._embed_review_panel (ui.review_panel.ReviewPanel).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsGeometry,
    QgsMapLayerProxyModel,
    QgsMessageLog,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsTask,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.devices import DEVICE_CHOICES
from ..core.file_names import probability_path
from . import dependency_check
from .detect_task import DetectTask
from .layer_styles import save_style_in_geopackage, style_probability_layer, style_slump_layer

SETTINGS_PREFIX = "thaw_slump_mapper/dock/"
LOG_TAG = "Thaw Slump Mapper"
EXTENT_WHOLE, EXTENT_CANVAS, EXTENT_SELECTED = "whole", "canvas", "selected"
EXTENT_MODES = ((EXTENT_WHOLE, "Whole layer"), (EXTENT_CANVAS, "Current map canvas"), (EXTENT_SELECTED, "Selected polygons of a layer"))
MAX_LOG_LINES = 300


def narrow(combo: QComboBox) -> QComboBox:
    """Let a combo box shrink with the dock instead of forcing it wider than the screen."""
    combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


def safe_stem(text: str) -> str:
    """A file-name-safe version of a layer name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return stem[:60] or "image"


def next_free_output(folder: Path, stem: str) -> Path:
    """<folder>/<stem>_001.gpkg, _002, ...: the first whose GeoPackage and raster are both free."""
    for number in range(1, 10000):
        candidate = folder / f"{stem}_{number:03d}.gpkg"
        if not candidate.exists() and not probability_path(candidate).exists():
            return candidate
    raise RuntimeError(f"No free output name left in {folder}")


class DetectDock(QgsDockWidget):
    """Inputs, Run/Cancel, progress and log; adds the result layers when the task finishes."""

    # Emitted on the main thread after the result layers are in the project (tests, review panel).
    detection_finished = pyqtSignal(object)

    def __init__(self, iface: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__("Detect thaw slumps", parent)
        self.setObjectName("ThawSlumpMapperDetectDock")
        self.iface = iface
        self.settings = QgsSettings()
        self.task: Optional[DetectTask] = None  # keep a reference: QGIS does not
        self.install_task: Optional[QgsTask] = None
        self.last_result: Any = None
        self.last_layers: List[Any] = []
        self.checkpoint: Any = None
        self.review_panel: Any = None
        self._band_boxes: List[QgsRasterBandComboBox] = []
        self._build()
        self._restore_settings()
        self.refresh_dependencies()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.tabs = QTabWidget()
        detect_page = QWidget()
        page_layout = QVBoxLayout(detect_page)

        # Missing packages: shown instead of a traceback, with an install button.
        self.dependency_frame = QFrame()
        self.dependency_frame.setFrameShape(QFrame.StyledPanel)
        dep_layout = QVBoxLayout(self.dependency_frame)
        self.dependency_label = QLabel()
        self.dependency_label.setWordWrap(True)
        self.install_button = QPushButton("Install missing packages")
        self.install_button.clicked.connect(lambda: self.install_missing(confirm=True))
        dep_layout.addWidget(self.dependency_label)
        dep_layout.addWidget(self.install_button)
        page_layout.addWidget(self.dependency_frame)

        form = QFormLayout()
        self.raster_combo = narrow(QgsMapLayerComboBox())
        self.raster_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        form.addRow("Image", self.raster_combo)

        self.band_group = QGroupBox("Bands")
        self.band_group.setToolTip("The raster band that feeds each of the checkpoint's input bands")
        self.band_form = QFormLayout(self.band_group)
        form.addRow(self.band_group)

        self.dem_combo = narrow(QgsMapLayerComboBox())
        self.dem_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.dem_combo.setAllowEmptyLayer(True)
        self.dem_combo.setLayer(None)
        self.dem_combo.setToolTip("Optional: a DEM adds slope, aspect, TPI and solar radiation to every slump")
        form.addRow("DEM (optional)", self.dem_combo)

        self.checkpoint_widget = QgsFileWidget()
        self.checkpoint_widget.setFilter("Thaw slump checkpoints (*.pt)")
        self.checkpoint_widget.lineEdit().setPlaceholderText("bundled model")
        form.addRow("Checkpoint", self.checkpoint_widget)
        self.checkpoint_info = QLabel()
        self.checkpoint_info.setWordWrap(True)
        self.checkpoint_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("", self.checkpoint_info)

        extent_row = QHBoxLayout()
        self.extent_combo = narrow(QComboBox())
        for key, label in EXTENT_MODES:
            self.extent_combo.addItem(label, key)
        self.extent_layer_combo = narrow(QgsMapLayerComboBox())
        self.extent_layer_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        extent_row.addWidget(self.extent_combo)
        extent_row.addWidget(self.extent_layer_combo)
        form.addRow("Extent", extent_row)

        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.01, 0.99)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        form.addRow("Threshold", self.threshold_spin)
        self.min_area_spin = QDoubleSpinBox()
        self.min_area_spin.setRange(0.0, 1e8)
        self.min_area_spin.setDecimals(0)
        self.min_area_spin.setSingleStep(500.0)
        self.min_area_spin.setSuffix(" m²")
        form.addRow("Minimum area", self.min_area_spin)

        device_row = QHBoxLayout()
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.device_label = QLabel()
        device_row.addWidget(self.device_combo)
        device_row.addWidget(self.device_label, 1)
        form.addRow("Device", device_row)

        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoPackage (*.gpkg)")
        form.addRow("Output", self.output_widget)
        page_layout.addLayout(form)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("thawSlumpRun")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        page_layout.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        page_layout.addWidget(self.progress_bar)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(MAX_LOG_LINES)
        self.log_view.setMinimumHeight(90)
        page_layout.addWidget(self.log_view, 1)

        after = QHBoxLayout()
        self.report_button = QPushButton("Report...")
        self.report_button.setToolTip("Write an HTML report of the last detection's slumps")
        self.report_button.setEnabled(False)
        self.fine_tune_button = QPushButton("Fine-tune...")
        self.fine_tune_button.setToolTip(
            "Fine-tune the checkpoint on your corrected labels (runs in the background; needs torch, installed on demand)")
        after.addWidget(self.report_button)
        after.addWidget(self.fine_tune_button)
        page_layout.addLayout(after)
        self._add_full_install_offer(page_layout)
        self._add_tooltips()

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # a dock is narrow; wrap instead
        scroll.setWidget(detect_page)
        self.tabs.addTab(scroll, "Detect")
        self._embed_review_panel()
        self._embed_change_panel()
        self.setWidget(self.tabs)

        self.raster_combo.layerChanged.connect(self._layer_changed)
        self.checkpoint_widget.fileChanged.connect(self._checkpoint_changed)
        self.extent_combo.currentIndexChanged.connect(self._extent_mode_changed)
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        self.run_button.clicked.connect(self.start_detection)
        self.cancel_button.clicked.connect(self.cancel_detection)
        self.report_button.clicked.connect(self.open_report)
        self.fine_tune_button.clicked.connect(self.open_fine_tune)

    def _add_tooltips(self) -> None:
        """Every input says its unit and default, as the Processing dialogs do."""
        tips = {
            self.raster_combo: "The optical image: RGB (3 bands) or PlanetScope B,G,R,NIR (4 bands), at any resolution; "
                               "it is resampled to the checkpoint's pixel size (3 m for the bundled model).",
            self.dem_combo: "Optional: a DEM (elevation in m, any CRS) adds slope, aspect, TPI and solar radiation to every "
                            "slump. Default: none.",
            self.checkpoint_widget: "A .pt checkpoint saved by this plugin. Default (empty): the bundled DeepLabv3+ model "
                                    "(RGB, 3 m).",
            self.extent_combo: "Where to detect. Default: the whole layer; or the map canvas, or selected polygons.",
            self.threshold_spin: "Slump probability (0-1) a pixel must reach to be part of a slump. Default: the "
                                 "checkpoint's (0.50 for the bundled model).",
            self.min_area_spin: "Slumps smaller than this (m\u00b2) are dropped. Default: the checkpoint's "
                                "(3000 m\u00b2 for the bundled model).",
            self.device_combo: "auto (default): CUDA when torch sees a GPU, else the CPU with onnxruntime; cpu; "
                               "cuda (needs torch).",
            self.output_widget: "GeoPackage for the polygons; the probability GeoTIFF goes beside it. Default: "
                                "<image>_NNN.gpkg with the next free number (nothing is overwritten).",
        }
        for widget, tip in tips.items():
            widget.setToolTip(tip)

    # ------------------------------------------------------------------ torch on demand
    def _add_full_install_offer(self, page_layout) -> None:
        """CPU detection needs no torch; fine-tuning and CUDA do, so the dock offers it here."""
        self.full_frame = QFrame()
        self.full_frame.setObjectName("thawSlumpFullInstall")
        full_layout = QVBoxLayout(self.full_frame)
        self.full_label = QLabel(dependency_check.FULL_NOTE)
        self.full_label.setWordWrap(True)
        self.full_install_button = QPushButton("Install torch for fine-tuning and CUDA...")
        self.full_install_button.setToolTip(
            f"pip-installs {', '.join(r for _, r in dependency_check.FULL_PACKAGES)} into the plugin's package folder")
        self.full_install_button.clicked.connect(lambda: self.install_full(confirm=True))
        full_layout.addWidget(self.full_label)
        full_layout.addWidget(self.full_install_button)
        page_layout.addWidget(self.full_frame)
        self.full_frame.setVisible(bool(dependency_check.missing_full_packages()))

    def install_full(self, confirm: bool = True) -> bool:
        """Offer torch and segmentation-models-pytorch; True when they were missing."""
        missing = dependency_check.missing_full_packages()
        self.full_frame.setVisible(bool(missing))
        if not missing or self.install_task is not None:
            return bool(missing)
        requirements = [m.requirement for m in missing]
        target = dependency_check.managed_site_dir()
        self.log(dependency_check.FULL_NOTE)
        if confirm and QMessageBox.question(
            self, "Install torch", f"{dependency_check.FULL_NOTE}\n\nDownload and install {', '.join(requirements)} into\n{target}?"
        ) != QMessageBox.Yes:
            return True
        self.log(f"Installing {' '.join(requirements)} into {target} ...")
        self.install_task = InstallTask(requirements, target, self._install_done)
        self.install_task.line.connect(self.log)
        QgsApplication.taskManager().addTask(self.install_task)
        return True

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
        self._extent_mode_changed()
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
        self.dependency_frame.setVisible(bool(missing))
        self.dependency_label.setText(
            dependency_check.describe_missing(missing)
            + f"\nThey go into {dependency_check.managed_site_dir()}, which the plugin puts on Python's path."
            if missing
            else ""
        )
        self.run_button.setEnabled(not missing and self.task is None)
        if not missing:
            self._checkpoint_changed(self.checkpoint_widget.filePath(), from_user=False)
            self._device_changed()
        else:
            self.checkpoint_info.setText("The checkpoint is read once the missing packages are installed.")
        return missing

    def install_missing(self, confirm: bool = True) -> None:
        missing = dependency_check.missing_packages()
        if not missing or self.install_task is not None:
            return
        requirements = [m.requirement for m in missing]
        target = dependency_check.managed_site_dir()
        if confirm and QMessageBox.question(
            self,
            "Install Python packages",
            f"Download and install {', '.join(requirements)} into\n{target}?\n(torch is large: several hundred MB.)",
        ) != QMessageBox.Yes:
            return
        self.log(f"Installing {' '.join(requirements)} into {target} ...")
        self.install_task = InstallTask(requirements, target, self._install_done)
        self.install_task.line.connect(self.log)
        self.install_button.setEnabled(False)
        QgsApplication.taskManager().addTask(self.install_task)

    def _install_done(self, task: "InstallTask") -> None:
        self.install_task = None
        self.install_button.setEnabled(True)
        dependency_check.activate_managed_site_dir()
        self.full_frame.setVisible(bool(dependency_check.missing_full_packages()))
        if task.return_code == 0:
            self.log("Packages installed.")
        else:
            self.log(f"pip failed (exit status {task.return_code}); see the lines above.")
        if self.refresh_dependencies():
            self.log("Some packages are still missing; restarting QGIS may be needed.")

    # ------------------------------------------------------------------ input reactions
    def _layer_changed(self, *_: Any) -> None:
        self._rebuild_band_boxes()
        self._update_output_placeholder()

    def _load_checkpoint(self, path_text: str) -> Any:
        from ..core.errors import UserError
        from ..core.checkpoint import checkpoint_or_bundled
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
        ckpt = self.checkpoint
        if ckpt is not None:
            metrics = ckpt.provenance.get("metrics") or {}
            shown = ckpt.validation_line() or ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(metrics.items())[:6])
            untrained = "" if ckpt.trained else " <b>(untrained weights)</b>"
            self.checkpoint_info.setText(
                f"{ckpt.name} v{ckpt.version}{untrained}<br>bands {', '.join(ckpt.bands)}; GSD {ckpt.gsd_m:g} m"
                + (f"<br>metrics: {shown}" if shown else "")
            )
            # The checkpoint's own defaults, unless the user's last values are remembered.
            remembered = not from_user and self.settings.contains(SETTINGS_PREFIX + "threshold")
            self.threshold_spin.setValue(self._setting("threshold", ckpt.threshold, float) if remembered else ckpt.threshold)
            self.min_area_spin.setValue(self._setting("min_area_m2", ckpt.min_area_m2, float) if remembered else ckpt.min_area_m2)
        self._rebuild_band_boxes()

    def _rebuild_band_boxes(self) -> None:
        while self.band_form.rowCount():
            self.band_form.removeRow(0)
        self._band_boxes = []
        layer = self.raster_combo.currentLayer()
        if self.checkpoint is None:
            return
        defaults = self._default_bands(layer)
        for model_band, raster_band in zip(self.checkpoint.bands, defaults):
            box = narrow(QgsRasterBandComboBox())
            box.setLayer(layer)
            if raster_band is not None:
                box.setBand(raster_band)
            self.band_form.addRow(model_band, box)
            self._band_boxes.append(box)

    def _default_bands(self, layer: Any) -> List[Optional[int]]:
        """Tagged colours, RGB or PlanetScope order (engine.bands), else 1, 2, 3..."""
        count = len(self.checkpoint.bands)
        if not isinstance(layer, QgsRasterLayer):
            return [None] * count
        from ..engine.bands import resolve_bands
        from ..core.errors import UserError

        provider = layer.dataProvider()
        colours = [provider.colorInterpretationName(i) for i in range(1, layer.bandCount() + 1)]
        try:
            from ..engine.bands import choose_bands_for_file

            # Colour tags, band descriptions, then defaults by data type, exactly as detection chooses.
            choice = choose_bands_for_file(self.checkpoint.bands, layer.source()) if layer.providerType() == "gdal" else None
            if choice is not None and hasattr(self, "log_view"):
                self.log(f"{layer.name()}: bands {','.join(map(str, choice.bands))} ({choice.reason})")
            if choice is not None:
                return list(choice.bands)
        except (UserError, ImportError, OSError, ValueError, RuntimeError):
            pass
        try:
            return list(resolve_bands(self.checkpoint.bands, layer.bandCount(), colours))
        except UserError:
            return [i + 1 if i < layer.bandCount() else None for i in range(count)]

    def set_bands(self, bands: List[int]) -> None:
        for box, band in zip(self._band_boxes, bands):
            box.setBand(band)

    def selected_bands(self) -> List[int]:
        return [box.currentBand() for box in self._band_boxes]

    def _extent_mode_changed(self, *_: Any) -> None:
        self.extent_layer_combo.setEnabled(self.extent_combo.currentData() == EXTENT_SELECTED)

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
        folder = self._output_folder()
        return next_free_output(folder, self._output_stem())

    # ------------------------------------------------------------------ run
    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def is_running(self) -> bool:
        return self.task is not None

    def _extent(self, layer: QgsRasterLayer) -> Any:
        from ..core.errors import UserError
        from ..engine.extent import Extent

        mode = self.extent_combo.currentData()
        if mode == EXTENT_CANVAS:
            canvas = self.iface.mapCanvas()
            rect = canvas.extent()
            crs = canvas.mapSettings().destinationCrs()
            return Extent.from_bounds(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum(), crs.toWkt())
        if mode == EXTENT_SELECTED:
            polygons = self.extent_layer_combo.currentLayer()
            if not isinstance(polygons, QgsVectorLayer) or polygons.selectedFeatureCount() == 0:
                raise UserError("Select one or more polygons in the extent layer first, or choose another extent.")
            import shapely.wkt

            union = QgsGeometry.unaryUnion([f.geometry() for f in polygons.selectedFeatures()])
            return Extent.from_polygon(shapely.wkt.loads(union.asWkt()), polygons.crs().toWkt())
        return None

    def build_request(self) -> Any:
        """The DetectionRequest for the current inputs (raises UserError on bad input)."""
        from ..engine.detect import DetectionRequest
        from ..core.errors import UserError
        from ..qgis_common.layer_adapters import raster_file_path
        from qgis.core import QgsProcessingException

        layer = self.raster_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer):
            raise UserError("Choose the image to search: add a raster layer to the project first.")
        if self.checkpoint is None:
            raise UserError("The checkpoint could not be read; choose another checkpoint file.")
        try:
            input_path = raster_file_path(layer)
        except QgsProcessingException as err:
            raise UserError(str(err)) from None
        output = self.resolved_output_path()
        output.parent.mkdir(parents=True, exist_ok=True)
        return DetectionRequest(
            input_path=Path(input_path),
            output_path=output,
            probability_path=probability_path(output),
            checkpoint_path=Path(self.checkpoint.path) if self.checkpoint.path else None,
            bands=self.selected_bands(),
            extent=self._extent(layer),
            threshold=self.threshold_spin.value(),
            min_area_m2=self.min_area_spin.value(),
            device=self.device_combo.currentText(),
        )

    def start_detection(self) -> Optional[DetectTask]:
        if self.task is not None:
            return None
        from ..core.errors import UserError

        try:
            request = self.build_request()
        except UserError as err:
            self._message("Cannot run", str(err), Qgis.Warning)
            self.log(str(err))
            return None
        self.save_settings()
        layer = self.raster_combo.currentLayer()
        dem = self.dem_combo.currentLayer()
        dem_path = None
        if isinstance(dem, QgsRasterLayer):
            from qgis.core import QgsProcessingException

            from ..qgis_common.layer_adapters import raster_file_path

            try:
                dem_path = raster_file_path(dem)
            except QgsProcessingException as err:  # a Qt slot must never raise: say it in one line
                self._message("Cannot run", str(err), Qgis.Warning)
                self.log(str(err))
                return None
        self._input_name = layer.name()
        self._input_layer = layer
        self._threshold = request.threshold
        self.task = DetectTask(request, self._detection_done, dem_path=dem_path, description=f"Detect thaw slumps in {layer.name()}")
        self.task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
        self.task.message.connect(self.log)
        self.progress_bar.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.log(f"Detecting in {layer.name()} -> {request.output_path}")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel_detection(self) -> None:
        if self.task is not None:
            self.cancel_button.setEnabled(False)
            self.task.cancel()

    def _detection_done(self, task: DetectTask) -> None:
        outcome = task.outcome
        self.task = None
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(not dependency_check.missing_packages())
        if outcome.cancelled:
            self.progress_bar.setValue(0)
            self.log("Cancelled; nothing was written.")
            self._message("Thaw slumps", "Detection cancelled; nothing was written.", Qgis.Info)
        elif outcome.error or outcome.result is None:
            self.log(outcome.error or "Detection failed.")
            if outcome.details:
                self.log(outcome.details)
                QgsMessageLog.logMessage(outcome.details, LOG_TAG, Qgis.Critical)
            self._message("Thaw slumps", outcome.error or "Detection failed.", Qgis.Critical)
        else:
            self._add_result_layers(outcome.result, outcome.polygon_layer or outcome.result.layer_name)
            if outcome.morphometry_note:
                self.log(outcome.morphometry_note)
            self.output_widget.setFilePath("")  # the next run gets the next free name
            self._update_output_placeholder()
        self.detection_finished.emit(outcome)

    def _add_result_layers(self, result: Any, layer_name: str) -> None:
        gpkg = Path(result.output_path)
        name = self._input_name
        polygons = QgsVectorLayer(f"{gpkg}|layername={layer_name}", f"Thaw slumps ({name})", "ogr")
        style_slump_layer(polygons)
        error = save_style_in_geopackage(polygons)
        if error:
            self.log(f"Style not saved in the GeoPackage: {error}")
        layers: List[Any] = [polygons]
        if result.probability_path is not None and Path(result.probability_path).exists():
            probability = QgsRasterLayer(str(result.probability_path), f"Slump probability ({name})", "gdal")
            style_probability_layer(probability, float(self._threshold))
            layers.append(probability)
        project = QgsProject.instance()
        group = project.layerTreeRoot().insertGroup(0, name)
        for layer in layers:
            project.addMapLayer(layer, False)
            group.addLayer(layer)
        self.last_result = result
        self.last_layers = layers
        self.report_button.setEnabled(True)
        if self.review_panel is not None:
            self.review_panel.set_layer(polygons)
        summary = result.summary()
        self.progress_bar.setValue(100)
        self.log(summary)
        self._message("Thaw slumps", summary, Qgis.Success)

    def _message(self, title: str, text: str, level: int) -> None:
        if self.iface is not None:
            self.iface.messageBar().pushMessage(title, text, level, 8)

    # ------------------------------------------------------------------ follow-up actions
    def _open_algorithm_dialog(self, algorithm_id: str, parameters: dict) -> Any:
        """The standard Processing dialog, prefilled; it runs the algorithm as a background task."""
        if QgsApplication.processingRegistry().algorithmById(algorithm_id) is None:
            self._message("Thaw slumps", f"{algorithm_id} is not registered in Processing; enable the Processing plugin and reload this one.", Qgis.Warning)
            return None
        import processing

        dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
        dialog.show()
        return dialog

    def open_report(self) -> Any:
        """Hook: the morphometry report (issue 5) for the last detection's polygons."""
        if not self.last_layers:
            return None
        parameters = {"INPUT": self.last_layers[0]}
        if getattr(self, "_input_layer", None) is not None:
            parameters["IMAGE"] = self._input_layer
        return self._open_algorithm_dialog("thawslump:report", parameters)

    def open_fine_tune(self) -> Any:
        """Hook: `thawslump:train` (issue 4) from the current checkpoint; the result becomes the checkpoint."""
        if self.install_full(confirm=True):  # training needs torch, installed on demand
            return None
        base = str(self.checkpoint.path) if self.checkpoint is not None and self.checkpoint.path else ""
        algorithm = QgsApplication.processingRegistry().algorithmById("thawslump:train")
        parameters = {}
        if algorithm is not None and base:
            for definition in algorithm.parameterDefinitions():
                # thawslump:train calls its base checkpoint BASE.
                if (definition.name() == "BASE" or "CHECKPOINT" in definition.name()) and not definition.isDestination():
                    parameters[definition.name()] = base
        dialog = self._open_algorithm_dialog("thawslump:train", parameters)
        if dialog is not None and hasattr(dialog, "algorithmFinished"):
            dialog.algorithmFinished.connect(self._fine_tune_finished)
        return dialog

    def _fine_tune_finished(self, ok: bool, results: dict) -> None:
        new_checkpoint = next((v for k, v in (results or {}).items() if "CHECKPOINT" in k or k == "OUTPUT"), None)
        if ok and new_checkpoint and str(new_checkpoint).endswith(".pt"):
            self.checkpoint_widget.setFilePath(str(new_checkpoint))
            self.log(f"Fine-tuned checkpoint selected: {new_checkpoint}")

    def shutdown(self) -> None:
        """Called by the plugin's unload: stop work and remember the settings."""
        self.save_settings()
        if self.task is not None:
            self.task.cancel()
        if getattr(self, "change_panel", None) is not None:
            self.change_panel.shutdown()
        if self.install_task is not None:
            self.install_task.cancel()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.save_settings()
        super().closeEvent(event)


class InstallTask(QgsTask):
    """pip in the background; output lines go to the dock's log."""

    line = pyqtSignal(str)

    def __init__(self, requirements: List[str], target: Path, on_done) -> None:
        super().__init__("Install Thaw Slump Mapper packages", QgsTask.CanCancel)
        self.requirements = requirements
        self.target = target
        self.on_done = on_done
        self.return_code: Optional[int] = None

    def run(self) -> bool:
        try:
            self.return_code = dependency_check.install_packages(
                self.requirements, self.target, on_output=self.line.emit, is_cancelled=self.isCanceled
            )
        except Exception as err:  # noqa: BLE001 - a task never raises
            self.line.emit(f"Cannot run pip: {err}")
            self.return_code = -1
        return self.return_code == 0

    def finished(self, ok: bool) -> None:
        self.on_done(self)
