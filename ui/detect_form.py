"""The Detect tab's form: its widgets and the reactions that only concern widgets.

Built in code the way a Qt Designer ``Ui_*`` class builds a form: ``setup_detect_form`` puts
every widget on the host (the dock) as an attribute, so the dock, the tests and the
screenshot tools address them as ``dock.run_button``, ``dock.raster_combo`` and so on. The
layout is plain nested form rows, and several rows (band boxes, the checkpoint summary) are
rebuilt from the chosen checkpoint at run time, which a static ``.ui`` file cannot hold.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..core.devices import DEVICE_CHOICES

EXTENT_WHOLE, EXTENT_CANVAS, EXTENT_SELECTED = "whole", "canvas", "selected"
EXTENT_MODES = ((EXTENT_WHOLE, "Whole layer"), (EXTENT_CANVAS, "Current map canvas"), (EXTENT_SELECTED, "Selected polygons of a layer"))
MAX_LOG_LINES = 300

# Every input says its unit and default, as the Processing dialogs do.
TOOLTIPS = {
    "raster_combo": "The optical image: RGB (3 bands) or PlanetScope B,G,R,NIR (4 bands), at any resolution; "
                    "it is resampled to the checkpoint's pixel size (3 m for the bundled model).",
    "dem_combo": "Optional: a DEM (elevation in m, any CRS) adds slope, aspect, TPI and solar radiation to every "
                 "slump. Default: none.",
    "checkpoint_widget": "A .pt checkpoint saved by this plugin. Default (empty): the bundled DeepLabv3+ model "
                         "(RGB, 3 m).",
    "extent_combo": "Where to detect. Default: the whole layer; or the map canvas, or selected polygons.",
    "threshold_spin": "Slump probability (0-1) a pixel must reach to be part of a slump. Default: the "
                      "checkpoint's (0.50 for the bundled model).",
    "min_area_spin": "Slumps smaller than this (m\u00b2) are dropped. Default: the checkpoint's "
                     "(3000 m\u00b2 for the bundled model).",
    "device_combo": "auto (default): CUDA when torch sees a GPU, else the CPU with onnxruntime; cpu; "
                    "cuda (needs torch).",
    "output_widget": "GeoPackage for the polygons; the probability GeoTIFF goes beside it. Default: "
                     "<image>_NNN.gpkg with the next free number (nothing is overwritten).",
}


def narrow(combo: QComboBox) -> QComboBox:
    """Let a combo box shrink with the dock instead of forcing it wider than the screen."""
    combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


def layer_combo(filters: Any) -> QgsMapLayerComboBox:
    combo = narrow(QgsMapLayerComboBox())
    combo.setFilters(filters)
    return combo


class DetectForm:
    """The Detect tab's widgets, set up on the host widget (see the module docstring)."""

    _band_boxes: List[QgsRasterBandComboBox]

    def setup_detect_form(self, page_layout: QVBoxLayout) -> None:
        self._band_boxes = []
        form = QFormLayout()
        self._add_image_rows(form)
        self._add_checkpoint_rows(form)
        self._add_extent_row(form)
        self._add_detection_rows(form)
        self._add_output_row(form)
        page_layout.addLayout(form)
        self._add_run_controls(page_layout)
        self._add_follow_up_buttons(page_layout)
        for name, tip in TOOLTIPS.items():
            getattr(self, name).setToolTip(tip)
        self.extent_combo.currentIndexChanged.connect(self.extent_mode_changed)

    def _add_image_rows(self, form: QFormLayout) -> None:
        self.raster_combo = layer_combo(QgsMapLayerProxyModel.RasterLayer)
        form.addRow("Image", self.raster_combo)
        self.band_group = QGroupBox("Bands")
        self.band_group.setToolTip("The raster band that feeds each of the checkpoint's input bands")
        self.band_form = QFormLayout(self.band_group)
        form.addRow(self.band_group)
        self.dem_combo = layer_combo(QgsMapLayerProxyModel.RasterLayer)
        self.dem_combo.setAllowEmptyLayer(True)
        self.dem_combo.setLayer(None)
        form.addRow("DEM (optional)", self.dem_combo)

    def _add_checkpoint_rows(self, form: QFormLayout) -> None:
        self.checkpoint_widget = QgsFileWidget()
        self.checkpoint_widget.setFilter("Thaw slump checkpoints (*.pt)")
        self.checkpoint_widget.lineEdit().setPlaceholderText("bundled model")
        form.addRow("Checkpoint", self.checkpoint_widget)
        self.checkpoint_info = QLabel()
        self.checkpoint_info.setWordWrap(True)
        self.checkpoint_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("", self.checkpoint_info)

    def _add_extent_row(self, form: QFormLayout) -> None:
        extent_row = QHBoxLayout()
        self.extent_combo = narrow(QComboBox())
        for key, label in EXTENT_MODES:
            self.extent_combo.addItem(label, key)
        self.extent_layer_combo = layer_combo(QgsMapLayerProxyModel.PolygonLayer)
        extent_row.addWidget(self.extent_combo)
        extent_row.addWidget(self.extent_layer_combo)
        form.addRow("Extent", extent_row)

    def _add_detection_rows(self, form: QFormLayout) -> None:
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

    def _add_output_row(self, form: QFormLayout) -> None:
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoPackage (*.gpkg)")
        form.addRow("Output", self.output_widget)

    def _add_run_controls(self, page_layout: QVBoxLayout) -> None:
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

    def _add_follow_up_buttons(self, page_layout: QVBoxLayout) -> None:
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

    # ------------------------------------------------------------------ widget-only reactions
    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def extent_mode_changed(self, *_: Any) -> None:
        self.extent_layer_combo.setEnabled(self.extent_combo.currentData() == EXTENT_SELECTED)

    def rebuild_band_boxes(self, checkpoint: Any) -> None:
        """One band box per checkpoint input band, preset to the bands detection would choose."""
        while self.band_form.rowCount():
            self.band_form.removeRow(0)
        self._band_boxes = []
        layer = self.raster_combo.currentLayer()
        if checkpoint is None:
            return
        for model_band, raster_band in zip(checkpoint.bands, default_bands(checkpoint.bands, layer, self.log)):
            box = narrow(QgsRasterBandComboBox())
            box.setLayer(layer)
            if raster_band is not None:
                box.setBand(raster_band)
            self.band_form.addRow(model_band, box)
            self._band_boxes.append(box)

    def set_bands(self, bands: List[int]) -> None:
        for box, band in zip(self._band_boxes, bands):
            box.setBand(band)

    def selected_bands(self) -> List[int]:
        return [box.currentBand() for box in self._band_boxes]


def default_bands(model_bands: List[str], layer: Any, log: Callable[[str], None]) -> List[Optional[int]]:
    """Tagged colours, RGB or PlanetScope order (engine.bands), else 1, 2, 3..."""
    count = len(model_bands)
    if not isinstance(layer, QgsRasterLayer):
        return [None] * count
    from ..core.errors import UserError
    from ..engine.bands import choose_bands_for_file, resolve_bands

    try:
        # Colour tags, band descriptions, then defaults by data type, exactly as detection chooses.
        choice = choose_bands_for_file(model_bands, layer.source()) if layer.providerType() == "gdal" else None
        if choice is not None:
            log(f"{layer.name()}: bands {','.join(map(str, choice.bands))} ({choice.reason})")
            return list(choice.bands)
    except (UserError, ImportError, OSError, ValueError, RuntimeError):
        pass
    provider = layer.dataProvider()
    colours = [provider.colorInterpretationName(i) for i in range(1, layer.bandCount() + 1)]
    try:
        return list(resolve_bands(model_bands, layer.bandCount(), colours))
    except UserError:
        return [i + 1 if i < layer.bandCount() else None for i in range(count)]


def checkpoint_summary(ckpt: Any) -> str:
    """Name, version, bands, GSD and the first metrics, as rich text for the form."""
    metrics = ckpt.provenance.get("metrics") or {}
    shown = ckpt.validation_line() or ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(metrics.items())[:6])
    untrained = "" if ckpt.trained else " <b>(untrained weights)</b>"
    return (f"{ckpt.name} v{ckpt.version}{untrained}<br>bands {', '.join(ckpt.bands)}; GSD {ckpt.gsd_m:g} m"
            + (f"<br>metrics: {shown}" if shown else ""))
