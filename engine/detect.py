"""Detection: one call from a raster file to slump polygons and a probability GeoTIFF.

Every front end (dock, Processing, command line) calls ``run_detection``.
"""
from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

import rasterio
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..core.checkpoint import checkpoint_or_bundled
from ..core.errors import UserError
from ..core.file_names import DEFAULT_LAYER, probability_path
from ..core.progress import Progress
from ..core.scaling import compute_stretch
from .backends import make_predictor
from .bands import choose_bands
from .extent import Extent
from .inference import stream_predict
from .measures import metres_per_unit, true_area_perimeter
from .memory_limits import bounded_detection_memory
from .model_cache import load_for_detection
from .output_safety import StagedFile, VectorTarget, check_file_output, check_vector_output, reached
from .raster_source import PROBABILITY_NODATA, ProbabilityWriter, RasterRowSource, open_raster, processing_grid
from .stream_vectorize import VectorizingSink
from .tiling import fit_tile_and_overlap
from .tta import TTA_CHOICES, with_tta
from .vector_io import PolygonFeature, StagedLayer
from .vectorize import StripVectorizer

VECTORIZE_PIXELS_PER_STRIP = 8_000_000  # bounds the strip arrays (labels, scores) to ~100 MB
# Field names shared with morphometry and review (docs/ARCHITECTURE.md).
DETECTION_SCHEMA = {
    "id": "int",
    "score_mean": "float",
    "score_max": "float",
    "area_m2": "float",
    "perimeter_m": "float",
    "model": "str:80",
    "source": "str:254",
    "created": "str:32",
    "review": "str:12",
    "orig_score": "float",
    "orig_wkt": "str",
}


@dataclass
class DetectionRequest:
    input_path: Path
    output_path: Optional[Path] = None
    probability_path: Optional[Path] = None
    checkpoint_path: Optional[Path] = None
    bands: Optional[Sequence[int]] = None
    extent: Optional[Extent] = None
    threshold: Optional[float] = None
    min_area_m2: Optional[float] = None
    device: str = "auto"
    backend: str = "auto"
    # onnxruntime on the CPU: auto (int8 on x86 CPUs with VNNI or AVX2 for a trained checkpoint, else fp32), fp32 or int8;
    # engine/quantize.py. Ignored on CUDA (torch, fp16 autocast).
    precision: str = "auto"
    tta: str = "none"  # test-time augmentation: none, flip2 (2 passes a tile) or d4 (8 passes); engine/tta.py
    batch_size: Optional[int] = None  # tiles a network call; None: the predictor's (4 tiles, at most 1 Mpx, on the CPU; by free memory on CUDA)
    # px a side; None: the checkpoint's (512). Larger tiles run faster (fewer overlap pixels) but
    # change the network's view: BENCHMARKS.md, "Tile size". The light install's graph takes any size.
    tile_size: Optional[int] = None
    layer_name: str = DEFAULT_LAYER
    overwrite: bool = False
    # The user named layer_name explicitly: only then may a layer with human review edits be
    # replaced (with overwrite). Front ends set False when the name is their default.
    layer_named: bool = True


@dataclass
class DetectionResult:
    features: List[PolygonFeature]
    crs_wkt: str
    output_path: Optional[Path]
    layer_name: str
    probability_path: Optional[Path]
    checkpoint_summary: str
    device_name: str
    backend: str
    n_slumps: int
    total_area_m2: float
    elapsed_s: float
    trained_model: bool = True
    pixels: int = 0
    log: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """The one line the CLI, Processing and the dock print when a detection ends."""
        return f"{count_and_area(self.n_slumps, self.total_area_m2)} in {self.elapsed_s:.1f} s on {self.device_name}"


def count_and_area(n_slumps: int, total_area_m2: float) -> str:
    return f"{n_slumps} thaw slumps, {total_area_m2 / 10_000:.2f} ha"


@dataclass
class _Outputs:
    """The checked outputs of one run, staged under temporary names until commit."""

    layer: Optional[VectorTarget]
    probability: Optional[Path]
    staged_layer: Optional[StagedLayer] = None
    staged_probability: Optional[StagedFile] = None

    def discard(self) -> None:
        for staged in (self.staged_layer, self.staged_probability):
            if staged is not None:
                staged.discard()

    def commit(self) -> None:
        # The layer first: its commit is one SQLite transaction (or one rename) that a kill
        # rolls back; the probability raster follows with one rename.
        if self.staged_layer is not None:
            self.staged_layer.commit()
        if self.staged_probability is not None:
            self.staged_probability.commit()


def run_detection(request: DetectionRequest, progress: Optional[Progress] = None) -> DetectionResult:
    """Detect thaw slumps in ``request.input_path``; see DetectionRequest for the options."""
    with bounded_detection_memory():  # peak memory independent of the raster's size (issue 11)
        return _run_detection(request, progress)


@dataclass
class _Plan:
    """What a run settled before touching pixels: the model, its settings and the grid."""

    ckpt: Any
    threshold: float
    min_area: float
    bands: Sequence[int]
    grid: Any  # raster_source.processing_grid
    tile: int
    overlap: int
    predictor: Any
    batch: int  # tiles a network call: the request's, or the predictor's own
    log: List[str]


def _run_detection(request: DetectionRequest, progress: Optional[Progress] = None) -> DetectionResult:
    progress = progress or Progress()
    started = time.perf_counter()
    _check_settings(request)
    outputs = _check_outputs(request)
    with open_raster(request.input_path) as src:  # the input is checked first: the cheapest mistake to report
        plan = _plan(request, src, progress)
        features = _detect_and_write(request, src, plan, outputs, progress)
        crs_wkt = src.crs.to_wkt()
    total_area = float(sum(f.properties["area_m2"] for f in features))
    progress.report(1.0, count_and_area(len(features), total_area))
    return DetectionResult(
        features=features, crs_wkt=crs_wkt, output_path=Path(request.output_path) if request.output_path else None,
        layer_name=request.layer_name, probability_path=outputs.probability,
        checkpoint_summary=plan.ckpt.summary(), device_name=plan.predictor.device_name, backend=plan.predictor.backend,
        n_slumps=len(features), total_area_m2=total_area, elapsed_s=time.perf_counter() - started,
        trained_model=plan.ckpt.trained, pixels=int(plan.grid.window.width * plan.grid.window.height), log=plan.log,
    )


def _plan(request: DetectionRequest, src, progress: Progress) -> _Plan:
    """Checkpoint, threshold, bands, model grid, tile size and predictor, each logged."""
    ckpt = load_for_detection(checkpoint_or_bundled(request.checkpoint_path), request.device, request.backend, request.precision,
                              tile_of=lambda c: _model_grid_and_tile(c, request, src)[1][0])
    threshold = ckpt.threshold if request.threshold is None else float(request.threshold)
    if not 0.0 < threshold < 1.0:
        raise UserError(f"The threshold must lie between 0 and 1 (got {threshold}).")
    min_area = ckpt.min_area_m2 if request.min_area_m2 is None else float(request.min_area_m2)
    log: List[str] = [ckpt.summary()]
    choice = choose_bands(
        ckpt.bands, src.count, [ci.name for ci in src.colorinterp], request.bands,
        descriptions=list(src.descriptions), dtype=src.dtypes[0],
    )
    bands = choice.bands
    log.append(f"bands {','.join(map(str, bands))} for {','.join(ckpt.bands)}: {choice.reason}")
    progress.report(0.0, log[-1])
    grid, (tile, overlap) = _model_grid_and_tile(ckpt, request, src)
    predictor = with_tta(make_predictor(ckpt, request.device, request.backend, tile_size=tile, precision=request.precision),
                         request.tta)
    batch = request.batch_size or predictor.preferred_batch
    log.append(f"device: {predictor.device_name} ({predictor.backend}); tile {tile} px, overlap {overlap} px, {batch} tiles a batch")
    if grid.resampled:
        log.append(f"resampling {abs(src.transform.a):g} -> model grid {abs(grid.model_transform.a):g} (CRS units)")
    progress.report(0.0, log[-1])
    return _Plan(ckpt, threshold, min_area, bands, grid, tile, overlap, predictor, batch, log)


def _model_grid_and_tile(ckpt, request: DetectionRequest, src):
    """The model grid over the requested extent and the (tile, overlap) fitted to it."""
    extent_geom = request.extent.in_crs(src.crs) if request.extent else None
    grid = processing_grid(src, ckpt.gsd_m, extent_geom, request.extent.is_box if request.extent else True)
    return grid, fit_tile_and_overlap(grid.model_height, grid.model_width, request.tile_size or ckpt.tile_size, ckpt.overlap)


def _detect_and_write(request: DetectionRequest, src, plan: _Plan, outputs: _Outputs, progress: Progress) -> List[PolygonFeature]:
    """Probabilities, polygons and both outputs, written to temporary names and moved into
    place together at the end; on any failure (or a cancel) nothing is left behind."""
    workdir = tempfile.TemporaryDirectory(prefix="thaw_slump_")
    if outputs.probability is not None:
        outputs.staged_probability = StagedFile(outputs.probability, overwrite=request.overwrite)
        partial = outputs.staged_probability.temp
    else:
        partial = Path(workdir.name) / "probability.tif"
    model_grid_prob = Path(workdir.name) / "probability_model_grid.tif" if plan.grid.resampled else partial
    source = RasterRowSource(src, plan.bands, plan.grid)
    try:
        components = _predict_and_vectorize(request, src, plan, source, model_grid_prob, partial, progress)
        features = _features(components, src.crs, plan.min_area, plan.ckpt, request)
        if outputs.layer is not None:
            progress.report(0.98, "writing polygons")
            outputs.staged_layer = StagedLayer(outputs.layer)
            outputs.staged_layer.write(features, src.crs.to_wkt(), DETECTION_SCHEMA)
        progress.check_cancelled()  # the last moment a cancel can stop the run: nothing is in place yet
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    finally:
        source.close()
        workdir.cleanup()
    return features


def _predict_and_vectorize(request: DetectionRequest, src, plan: _Plan, source: RasterRowSource, model_grid_prob: Path,
                           partial: Path, progress: Progress):
    """The network over the whole grid, streamed into the probability raster; the slump components."""
    sample, sample_valid = source.sample_for_stretch()
    if not sample_valid.any():
        raise UserError(f"{Path(request.input_path).name} has no valid pixels in the chosen extent (all nodata).")
    stretch = compute_stretch(sample, sample_valid, plan.ckpt.scaling)
    grid = plan.grid
    writer = ProbabilityWriter(model_grid_prob, src.crs, grid.model_transform, grid.model_width, grid.model_height, plan.ckpt.name)
    reached("inference")
    # on the input grid, polygons are made while the model runs (engine/stream_vectorize.py)
    keep = _large_enough(src.crs, plan.min_area)
    specks = speck_pixels(src.crs, grid.input_transform, plan.min_area)
    sink = writer if grid.resampled else VectorizingSink(writer, grid.input_transform, grid.model_width, plan.threshold, keep, specks)
    try:
        stream_predict(source, sink, plan.predictor, stretch, plan.ckpt.scaling, plan.tile, plan.overlap, plan.batch,
                       progress.sub(0.0, 0.9))
    finally:
        writer.close()
    reached("vectorising")
    if grid.resampled:
        return _vectorize(model_grid_prob, partial, grid, plan.threshold, progress.sub(0.9, 0.98), keep, specks)
    return sink.components()


def _features(components, crs, min_area: float, ckpt, request: DetectionRequest) -> List[PolygonFeature]:
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    model_name = f"{ckpt.name} v{ckpt.version}"
    features: List[PolygonFeature] = []
    for comp in components:
        area, perimeter = true_area_perimeter(comp.geometry, crs)
        if area < min_area:
            continue
        score = round(comp.score_mean, 4)
        features.append(
            PolygonFeature(
                comp.geometry,
                {
                    "id": len(features) + 1, "score_mean": score, "score_max": round(comp.score_max, 4),
                    "area_m2": round(area, 2), "perimeter_m": round(perimeter, 2), "model": model_name,
                    "source": Path(request.input_path).name, "created": created, "review": "unreviewed",
                    # Full precision in the layer's CRS: the model's outline must be recoverable
                    # exactly, also in degrees (3 decimals would be ~100 m).
                    "orig_score": score, "orig_wkt": shapely.to_wkt(comp.geometry, rounding_precision=-1, output_dimension=2),
                },
            )
        )
    return features


def _check_settings(request: DetectionRequest) -> None:
    if (request.tta or "none").lower() not in TTA_CHOICES:
        raise UserError(f"Unknown test-time augmentation {request.tta!r}; use {', '.join(TTA_CHOICES)}.")
    batch = request.batch_size
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UserError(f"The batch size must be a whole number of tiles, 1 or more (got {batch}).")
    tile = request.tile_size
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or not 256 <= tile <= 4096 or tile % 32):
        raise UserError(f"The tile size must be a multiple of 32 px from 256 to 4096 (got {tile}).")
    if request.min_area_m2 is not None and not float(request.min_area_m2) >= 0:
        raise UserError(f"The minimum area must be 0 m2 or more (got {request.min_area_m2}).")
    if request.threshold is not None and not 0.0 < float(request.threshold) < 1.0:
        raise UserError(f"The threshold must lie between 0 and 1 (got {request.threshold}).")


def _check_outputs(request: DetectionRequest) -> _Outputs:
    """Every output is checked before the long run, not after it (engine/output_safety.py)."""
    inputs = [request.input_path, request.checkpoint_path]
    layer = None
    if request.output_path:
        layer = check_vector_output(
            request.output_path, request.layer_name, [(p, None) for p in inputs if p], request.overwrite, request.layer_named,
            field_names=list(DETECTION_SCHEMA),
        )
    probability = request.probability_path or (
        probability_path(Path(request.output_path), request.layer_name) if request.output_path else None
    )
    if probability is not None:
        probability = check_file_output(
            probability, "probability raster", (".tif", ".tiff"), inputs + [request.output_path], overwrite=request.overwrite
        )
    return _Outputs(layer, probability)


def _large_enough(crs, min_area: float):
    """The minimum-area test of _features, applied while vectorising so specks are never held."""
    return lambda component: true_area_perimeter(component.geometry, crs)[0] >= min_area


def speck_pixels(crs, transform: Affine, min_area: float) -> float:
    """Pixel count below which a component fails the minimum-area test whatever its shape, so
    the vectoriser need not polygonise it. Exact only in a projected CRS, where a component's
    true area is its pixels times the cell area; 0 (polygonise everything) in a geographic one.
    The margin of 1e-6 keeps a component whose area equals the minimum up to rounding."""
    if not min_area > 0 or crs is None or crs.is_geographic:
        return 0.0
    cell_m2 = abs(transform.a * transform.e - transform.b * transform.d) * metres_per_unit(crs) ** 2
    return min_area / cell_m2 * (1.0 - 1e-6) if cell_m2 > 0 else 0.0


def _vectorize(model_grid_prob: Path, final_partial: Path, grid, threshold: float, progress: Progress, keep=None,
               specks: float = 0.0):
    """Polygons on the input grid; when resampled, also writes the input-grid probability."""
    cut = int(round(threshold * 100))
    with rasterio.open(model_grid_prob) as prob:
        if grid.resampled:
            reader = WarpedVRT(
                prob, crs=prob.crs, transform=grid.input_transform, width=int(grid.window.width), height=int(grid.window.height),
                resampling=Resampling.bilinear, nodata=PROBABILITY_NODATA,
            )
            writer = ProbabilityWriter(final_partial, prob.crs, grid.input_transform, reader.width, reader.height, prob.tags().get("model", ""))
        else:
            reader, writer = prob, None
        try:
            vectorizer = StripVectorizer(grid.input_transform, reader.width, keep, specks)
            strip_rows = max(64, VECTORIZE_PIXELS_PER_STRIP // reader.width)
            for r0 in range(0, reader.height, strip_rows):
                progress.check_cancelled()
                n = min(strip_rows, reader.height - r0)
                values = reader.read(1, window=Window(0, r0, reader.width, n))
                valid = values != PROBABILITY_NODATA
                if writer is not None:
                    writer.write_rows(r0, values / 100.0, valid)
                vectorizer.add_strip(r0, valid & (values >= cut), values, score_divisor=100.0)
                progress.report((r0 + n) / reader.height, "vectorising")
            return vectorizer.finish()
        finally:
            if writer is not None:
                writer.close()
                reader.close()
