"""Run and result handling for the Detect tab: the form's values (DetectInputs) become the
engine's DetectionRequest, DetectRunner runs it as a ui.detect_task.DetectTask, and the
finished result becomes styled layers in the project.

The dock only collects inputs and shows results; the detection itself is
engine.detect.run_detection, the same function the Processing algorithm and the CLI call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from qgis.core import (
    QgsApplication,
    QgsGeometry,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core.file_names import probability_path
from .detect_form import EXTENT_CANVAS, EXTENT_SELECTED
from .detect_task import DetectTask
from .layer_styles import save_style_in_geopackage, style_probability_layer, style_slump_layer


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


@dataclass
class DetectInputs:
    """The Detect form's values, as layers and numbers (the dock's parameters)."""

    image: Any  # the raster layer to search
    dem: Any  # an optional DEM layer (morphometry)
    checkpoint: Any  # core.checkpoint.Checkpoint, None when it could not be read
    output_path: Path
    bands: List[int]
    extent_mode: str
    canvas: Any  # for the canvas extent
    extent_polygons: Any  # for the selected-polygons extent
    threshold: float
    min_area_m2: float
    device: str


def detection_request(inputs: DetectInputs) -> Any:
    """The engine's DetectionRequest for the form's values (raises UserError on bad input)."""
    from ..core.errors import UserError
    from ..engine.detect import DetectionRequest

    if not isinstance(inputs.image, QgsRasterLayer):
        raise UserError("Choose the image to search: add a raster layer to the project first.")
    if inputs.checkpoint is None:
        raise UserError("The checkpoint could not be read; choose another checkpoint file.")
    input_path = layer_file(inputs.image)
    output = inputs.output_path
    output.parent.mkdir(parents=True, exist_ok=True)
    return DetectionRequest(
        input_path=Path(input_path),
        output_path=output,
        probability_path=probability_path(output),
        checkpoint_path=Path(inputs.checkpoint.path) if inputs.checkpoint.path else None,
        bands=inputs.bands,
        extent=chosen_extent(inputs),
        threshold=inputs.threshold,
        min_area_m2=inputs.min_area_m2,
        device=inputs.device,
    )


def layer_file(layer: Any) -> str:
    """The file behind a raster layer, or UserError with Processing's one-line reason."""
    from ..core.errors import UserError
    from ..qgis_common.layer_adapters import raster_file_path

    try:
        return raster_file_path(layer)
    except QgsProcessingException as err:
        raise UserError(str(err)) from None


def chosen_extent(inputs: DetectInputs) -> Any:
    """The engine Extent for the extent choice (None: the whole layer); raises UserError."""
    from ..core.errors import UserError
    from ..engine.extent import Extent

    if inputs.extent_mode == EXTENT_CANVAS:
        rect = inputs.canvas.extent()
        crs = inputs.canvas.mapSettings().destinationCrs()
        return Extent.from_bounds(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum(), crs.toWkt())
    if inputs.extent_mode == EXTENT_SELECTED:
        polygons = inputs.extent_polygons
        if not isinstance(polygons, QgsVectorLayer) or polygons.selectedFeatureCount() == 0:
            raise UserError("Select one or more polygons in the extent layer first, or choose another extent.")
        import shapely.wkt

        union = QgsGeometry.unaryUnion([f.geometry() for f in polygons.selectedFeatures()])
        return Extent.from_polygon(shapely.wkt.loads(union.asWkt()), polygons.crs().toWkt())
    return None


class DetectRunner(QObject):
    """Starts one DetectTask at a time and reports its progress, log lines and outcome."""

    progress = pyqtSignal(int)
    message = pyqtSignal(str)
    finished = pyqtSignal(object)  # the task's DetectOutcome, on the main thread

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.task: Optional[DetectTask] = None  # keep a reference: QGIS does not

    def start(self, request: Any, dem_path: Optional[str], image_name: str) -> DetectTask:
        self.task = DetectTask(request, self._done, dem_path=dem_path, description=f"Detect thaw slumps in {image_name}")
        self.task.progressChanged.connect(lambda value: self.progress.emit(int(value)))
        self.task.message.connect(self.message)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _done(self, task: DetectTask) -> None:
        self.task = None
        self.finished.emit(task.outcome)


def add_result_layers(result: Any, layer_name: str, image_name: str, threshold: float, log: Any) -> List[Any]:
    """The styled polygon (and probability) layers of a result, in a new group at the top."""
    polygons = QgsVectorLayer(f"{Path(result.output_path)}|layername={layer_name}", f"Thaw slumps ({image_name})", "ogr")
    style_slump_layer(polygons)
    error = save_style_in_geopackage(polygons)
    if error:
        log(f"Style not saved in the GeoPackage: {error}")
    layers: List[Any] = [polygons]
    if result.probability_path is not None and Path(result.probability_path).exists():
        probability = QgsRasterLayer(str(result.probability_path), f"Slump probability ({image_name})", "gdal")
        style_probability_layer(probability, float(threshold))
        layers.append(probability)
    project = QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, image_name)
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer)
    return layers
