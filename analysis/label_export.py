"""Turn labelled polygons on an image into training chips (and an ARTS-schema GeoJSON).

Chips follow the format of ``core/chip_format.py``: georeferenced GeoTIFF image chips on
the image's own grid (resampled only when a different ground sample distance is asked
for), uint8 masks on the same grid (0 background, 1 slump, 255 ignore/nodata) and
``manifest.csv``.

* Positive chips are centred on each slump and reach ``buffer_m`` beyond it (the paper cut
  300 m around every polygon), and are at least ``chip_size_px`` square.
* Negative chips are centred on rejected detections (or ARTS ``TrainClass=Negative``
  polygons): the model said slump, the user said no, which is the most useful negative.
* Background chips are drawn at random away from every slump (``buffer_m`` clear).
* The train/val split is by spatial group: chips that overlap or share a block of
  ``block_size_m`` always land in the same split, so no pixel is seen in both.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasterio
import shapely
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.transform import Affine
from rasterio.warp import reproject
from rasterio.windows import Window, from_bounds
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from ..core.chip_format import MANIFEST_NAME, MASK_IGNORE, MASK_SLUMP, ChipRecord, write_manifest
from ..core.errors import UserError
from ..core.progress import Progress
from ..core.scaling import valid_pixels
from ..core.union_find import UnionFind
from ..engine.raster_source import open_raster
from ..engine.vector_io import PolygonFeature, read_polygons, reproject_geometry, write_polygons
from . import review

LABELS_GEOJSON = "labels_arts.geojson"
ARTS_SCHEMA = {
    "TrainClass": "str",
    "BaseMapSource": "str",
    "BaseMapResolution": "str",
    "BaseMapDate": "str",
    "UID": "str",
    "CreatorLab": "str",
}
# A fixed namespace makes the UID a pure function of the geometry: exporting the same
# outline twice gives the same UID, so duplicates can be found across contributions.
UID_NAMESPACE = uuid.NAMESPACE_OID
# At least this share of a random background chip must be imaged, or it teaches nothing.
MIN_VALID_BACKGROUND = 0.5
BACKGROUND_TRIES_PER_CHIP = 50


@dataclass
class Label:
    geometry: BaseGeometry  # in the image CRS
    train_class: str  # review.POSITIVE / NEGATIVE / IGNORE


@dataclass
class ChipPlan:
    kind: str  # positive / negative / background
    bounds: Tuple[float, float, float, float]  # snapped to the output grid, image CRS
    split: str = "train"


@dataclass
class ExportSummary:
    output_folder: Path
    manifest: Path
    labels_geojson: Path
    gsd_m: float
    n_chips: int
    n_positive_chips: int
    n_negative_chips: int
    n_background_chips: int
    n_train: int
    n_val: int
    n_positive_labels: int
    n_negative_labels: int
    warnings: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


# ---------------------------------------------------------------- labels


def uid_for(geometry: BaseGeometry) -> str:
    """ARTS UID: a uuid5 of the geometry's WKB (exact bytes, so the same outline -> same UID)."""
    return str(uuid.uuid5(UID_NAMESPACE, shapely.to_wkb(geometry, hex=True, output_dimension=2)))


def label_class(properties: Dict[str, Any], has_review: bool, has_train_class: bool, unreviewed: str) -> str:
    """A reviewed detection layer says rejected -> negative; an ARTS-like layer says TrainClass;
    a plain polygon layer is all slumps."""
    if has_review:
        return review.training_class(properties.get(review.REVIEW_FIELD), unreviewed=unreviewed)
    if has_train_class:
        return review.NEGATIVE if review.is_negative_label(properties) else review.POSITIVE
    return review.POSITIVE


def read_labels(
    labels_path: Path | str, labels_layer: Optional[str], image_crs_wkt: str, unreviewed: str = review.POSITIVE
) -> List[Label]:
    layer = read_polygons(labels_path, labels_layer)
    name = Path(labels_path).name
    if not layer.features:
        raise UserError(f"{name} holds no polygons; pick a layer with slump outlines.")
    if not layer.crs_wkt:
        raise UserError(f"{name} has no coordinate reference system; assign one (e.g. in QGIS) and try again.")
    has_review = review.REVIEW_FIELD in layer.schema
    has_train_class = review.TRAIN_CLASS_FIELD in layer.schema
    labels = []
    for f in layer.features:
        geom = reproject_geometry(f.geometry, layer.crs_wkt, image_crs_wkt)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        if geom.is_empty:
            continue
        labels.append(Label(geom, label_class(f.properties, has_review, has_train_class, unreviewed)))
    return labels


# ---------------------------------------------------------------- grid


@dataclass
class OutputGrid:
    """The chips' pixel grid: the image grid, or one of ``gsd`` anchored at the image origin."""

    x0: float
    y0: float
    gsd: float
    width: int  # whole image in output pixels
    height: int

    def snap(self, xmin: float, ymin: float, xmax: float, ymax: float) -> Tuple[float, float, float, float]:
        """Bounds grown to whole output pixels and clipped to the image."""
        c0 = max(0, math.floor((xmin - self.x0) / self.gsd + 1e-9))
        c1 = min(self.width, math.ceil((xmax - self.x0) / self.gsd - 1e-9))
        r0 = max(0, math.floor((self.y0 - ymax) / self.gsd + 1e-9))
        r1 = min(self.height, math.ceil((self.y0 - ymin) / self.gsd - 1e-9))
        return (self.x0 + c0 * self.gsd, self.y0 - r1 * self.gsd, self.x0 + c1 * self.gsd, self.y0 - r0 * self.gsd)

    def square_around(self, cx: float, cy: float, side_px: int) -> Tuple[float, float, float, float]:
        half = side_px * self.gsd / 2.0
        return self.snap(cx - half, cy - half, cx + half, cy + half)


def _grid_for(src: "rasterio.DatasetReader", gsd_m: float) -> OutputGrid:
    t = src.transform
    width = int(round(src.width * t.a / gsd_m))
    height = int(round(src.height * -t.e / gsd_m))
    return OutputGrid(t.c, t.f, gsd_m, max(width, 1), max(height, 1))


def _same_resolution(src: "rasterio.DatasetReader", gsd_m: float) -> bool:
    return abs(src.transform.a - gsd_m) <= 1e-6 * gsd_m and abs(-src.transform.e - gsd_m) <= 1e-6 * gsd_m


def _read_chip(
    src: "rasterio.DatasetReader", bands: Sequence[int], bounds: Tuple[float, float, float, float], gsd_m: float
) -> Tuple[np.ndarray, Affine, np.ndarray]:
    """(bands, H, W) data on the output grid, its transform, and the valid-pixel mask."""
    xmin, ymin, xmax, ymax = bounds
    width = int(round((xmax - xmin) / gsd_m))
    height = int(round((ymax - ymin) / gsd_m))
    dst_transform = Affine(gsd_m, 0.0, xmin, 0.0, -gsd_m, ymax)
    nodata = src.nodata
    if _same_resolution(src, gsd_m):
        window = from_bounds(xmin, ymin, xmax, ymax, src.transform).round_offsets().round_lengths()
        data = src.read(list(bands), window=window)
    else:
        # Read a slightly larger source window so edge pixels have neighbours to resample from.
        margin = 2 * max(gsd_m, src.transform.a)
        window = from_bounds(xmin - margin, ymin - margin, xmax + margin, ymax + margin, src.transform)
        window = window.intersection(Window(0, 0, src.width, src.height)).round_offsets().round_lengths()
        source = src.read(list(bands), window=window)
        data = np.zeros((len(bands), height, width), dtype=source.dtype)
        fill = nodata if nodata is not None else 0
        data[...] = fill
        downsampling = gsd_m > src.transform.a
        for b in range(len(bands)):
            reproject(
                source[b], data[b], src_transform=src.window_transform(window), src_crs=src.crs,
                dst_transform=dst_transform, dst_crs=src.crs, src_nodata=nodata, dst_nodata=fill,
                resampling=Resampling.average if downsampling else Resampling.bilinear,
            )
    valid = valid_pixels(data.astype(np.float64, copy=False), nodata)
    return data, dst_transform, valid


# ---------------------------------------------------------------- planning


def _plan_positive_chips(labels: List[Label], grid: OutputGrid, chip_size_px: int, buffer_m: float) -> List[ChipPlan]:
    plans: List[ChipPlan] = []
    covered: List[BaseGeometry] = []
    # Largest first, so a small slump beside a big one usually falls inside the big one's chip.
    for label in sorted(labels, key=lambda other: -other.geometry.area):
        if label.train_class != review.POSITIVE:
            continue
        needed = label.geometry.buffer(buffer_m, quad_segs=4) if buffer_m > 0 else label.geometry
        image_box = box(*grid.snap(*needed.bounds)) if not needed.is_empty else None
        if image_box is None or image_box.is_empty or image_box.area == 0:
            continue
        if any(c.contains(image_box) for c in covered):
            continue  # another chip already shows this slump with its whole buffer
        xmin, ymin, xmax, ymax = needed.bounds
        side_px = max(chip_size_px, math.ceil(max(xmax - xmin, ymax - ymin) / grid.gsd))
        cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
        bounds = grid.square_around(cx, cy, side_px)
        if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
            continue
        plans.append(ChipPlan("positive", bounds))
        covered.append(box(*bounds))
    return plans


def _plan_negative_chips(labels: List[Label], grid: OutputGrid, chip_size_px: int) -> List[ChipPlan]:
    plans = []
    for label in labels:
        if label.train_class != review.NEGATIVE:
            continue
        xmin, ymin, xmax, ymax = label.geometry.bounds
        side_px = max(chip_size_px, math.ceil(max(xmax - xmin, ymax - ymin) / grid.gsd))
        bounds = grid.square_around((xmin + xmax) / 2.0, (ymin + ymax) / 2.0, side_px)
        if bounds[2] > bounds[0] and bounds[3] > bounds[1]:
            plans.append(ChipPlan("negative", bounds))
    return plans


def _plan_background_chips(
    src: "rasterio.DatasetReader",
    bands: Sequence[int],
    labels: List[Label],
    grid: OutputGrid,
    chip_size_px: int,
    buffer_m: float,
    count: int,
    rng: np.random.Generator,
) -> List[ChipPlan]:
    if count <= 0:
        return []
    side = chip_size_px * grid.gsd
    if side > grid.width * grid.gsd or side > grid.height * grid.gsd:
        return []  # the image is smaller than one chip
    slumps = [label.geometry for label in labels if label.train_class != review.NEGATIVE]
    keep_out = shapely.union_all(np.asarray(slumps, dtype=object)).buffer(buffer_m, quad_segs=4) if slumps else shapely.Polygon()
    plans: List[ChipPlan] = []
    taken: List[BaseGeometry] = []
    for _ in range(count * BACKGROUND_TRIES_PER_CHIP):
        if len(plans) >= count:
            break
        col = int(rng.integers(0, grid.width - chip_size_px + 1))
        row = int(rng.integers(0, grid.height - chip_size_px + 1))
        xmin = grid.x0 + col * grid.gsd
        ymax = grid.y0 - row * grid.gsd
        bounds = (xmin, ymax - side, xmin + side, ymax)
        footprint = box(*bounds)
        if footprint.intersects(keep_out) or any(footprint.intersects(t) for t in taken):
            continue
        _, _, valid = _read_chip(src, bands, bounds, grid.gsd)
        if valid.mean() < MIN_VALID_BACKGROUND:
            continue
        plans.append(ChipPlan("background", bounds))
        taken.append(footprint)
    return plans


def assign_spatial_split(
    plans: List[ChipPlan], block_size_m: float, val_fraction: float, rng: np.random.Generator
) -> List[str]:
    """Split whole spatial groups (chips that overlap or share a block) into train and val.

    Returns warnings. Groups are shuffled with ``rng`` and moved to val until it holds at
    least ``val_fraction`` of the chips, always leaving train at least one group.
    """
    n = len(plans)
    sets = UnionFind(range(n))
    footprints = np.asarray([box(*p.bounds) for p in plans], dtype=object)
    if n:
        a, b = shapely.STRtree(footprints).query(footprints, predicate="intersects")
        for i, j in zip(a, b):
            sets.union(int(i), int(j))
    by_block: Dict[Tuple[int, int], int] = {}
    for i, p in enumerate(plans):
        cx, cy = (p.bounds[0] + p.bounds[2]) / 2.0, (p.bounds[1] + p.bounds[3]) / 2.0
        key = (math.floor(cx / block_size_m), math.floor(cy / block_size_m))
        if key in by_block:
            sets.union(i, by_block[key])
        else:
            by_block[key] = i
    order = list(sets.groups(range(n)).values())
    order.sort(key=lambda g: min(g))  # deterministic before shuffling
    rng.shuffle(order)
    warnings = []
    for p in plans:
        p.split = "train"
    if len(order) < 2:
        if n:
            warnings.append(
                "All chips form one spatial group, so every chip is in train and none in val; "
                "label slumps in more than one place (or use a smaller block size) to get a validation set."
            )
        return warnings
    target = val_fraction * n
    in_val = 0
    for group in order[:-1]:  # the last group always stays in train
        if in_val >= target:
            break
        for i in group:
            plans[i].split = "val"
        in_val += len(group)
    return warnings


# ---------------------------------------------------------------- writing


def _write_chip(
    src: "rasterio.DatasetReader",
    bands: Sequence[int],
    plan: ChipPlan,
    labels: List[Label],
    grid: OutputGrid,
    folder: Path,
    name: str,
) -> Tuple[str, str, int]:
    data, transform, valid = _read_chip(src, bands, plan.bounds, grid.gsd)
    height, width = data.shape[1:]
    chip_box = box(*plan.bounds)
    # Burn order matters: ignore first, then slumps on top, so a confirmed slump inside an
    # "ignore" area is still a slump. Negatives stay 0 (background), which they already are.
    on_chip = [label for label in labels if label.geometry.intersects(chip_box)]
    shapes = [(mapping(label.geometry), MASK_IGNORE) for label in on_chip if label.train_class == review.IGNORE]
    shapes += [(mapping(label.geometry), MASK_SLUMP) for label in on_chip if label.train_class == review.POSITIVE]
    mask = np.zeros((height, width), dtype=np.uint8)
    if shapes:
        mask = rasterize(shapes, out_shape=(height, width), transform=transform, fill=0, dtype="uint8")
    mask[~valid] = MASK_IGNORE
    image_rel, mask_rel = f"images/{name}.tif", f"masks/{name}.tif"
    profile = {
        "driver": "GTiff", "width": width, "height": height, "crs": src.crs, "transform": transform,
        "compress": "deflate",
    }
    with rasterio.open(folder / image_rel, "w", count=len(bands), dtype=data.dtype, nodata=src.nodata, **profile) as dst:
        dst.write(data)
    with rasterio.open(folder / mask_rel, "w", count=1, dtype="uint8", **profile) as dst:
        dst.write(mask, 1)
    return image_rel, mask_rel, int(np.count_nonzero(mask == MASK_SLUMP))


def _write_arts_geojson(
    path: Path, labels: List[Label], crs_wkt: str, base_map_source: str, gsd_m: float, base_map_date: str, creator_lab: str
) -> None:
    features = []
    for label in labels:
        if label.train_class == review.IGNORE:
            continue
        features.append(
            PolygonFeature(
                label.geometry,
                {
                    "TrainClass": "Positive" if label.train_class == review.POSITIVE else "Negative",
                    "BaseMapSource": base_map_source,
                    "BaseMapResolution": f"{gsd_m:g}",
                    "BaseMapDate": base_map_date,
                    "UID": uid_for(label.geometry),
                    "CreatorLab": creator_lab,
                },
            )
        )
    write_polygons(path, path.stem, features, crs_wkt, ARTS_SCHEMA, overwrite=True)


def _default_gsd(src: "rasterio.DatasetReader", checkpoint_path: Optional[Path | str]) -> float:
    """The checkpoint's GSD when one is given (or bundled), else the image's own pixel size."""
    from ..core.checkpoint import checkpoint_or_bundled
    from ..engine.onnx_model import load_detection_checkpoint

    path = checkpoint_or_bundled(checkpoint_path)
    if path.is_file():
        return float(load_detection_checkpoint(path).gsd_m)
    if checkpoint_path:
        raise UserError(f"Checkpoint not found: {checkpoint_path}.")
    return float(src.transform.a)


@dataclass
class ExportOptions:
    """How chips are cut. ``gsd_m`` None: the checkpoint's GSD (``checkpoint_path``, else the
    bundled one when it exists), else the image's. ``bands``: 1-based image bands to copy
    (default the first three, or all when fewer). ``unreviewed``: what unreviewed detections
    are (positive, negative or ignore)."""

    labels_layer: Optional[str] = None
    gsd_m: Optional[float] = None
    chip_size_px: int = 256
    buffer_m: float = 300.0
    negatives_per_positive: float = 1.0
    creator_lab: str = ""
    base_map_source: Optional[str] = None
    base_map_date: str = ""
    seed: int = 0
    checkpoint_path: Optional[Path | str] = None
    bands: Optional[Sequence[int]] = None
    val_fraction: float = 0.2
    block_size_m: Optional[float] = None
    unreviewed: str = review.POSITIVE
    overwrite: bool = False

    def check(self) -> None:
        if self.chip_size_px < 16:
            raise UserError(f"Chips must be at least 16 pixels wide; got {self.chip_size_px}.")
        if self.buffer_m < 0 or self.negatives_per_positive < 0 or not 0.0 <= self.val_fraction < 1.0:
            raise UserError("buffer_m and negatives_per_positive must be >= 0 and val_fraction in [0, 1).")


@dataclass
class ExportPlan:
    """What will be written, decided before any file is: the chips and their splits."""

    bands: List[int]
    gsd_m: float
    grid: OutputGrid
    labels_on_image: List[Label]
    chips: List[ChipPlan]
    warnings: List[str]


def export_labels(
    image_path: Path | str,
    labels_path: Path | str,
    output_folder: Path | str,
    options: Optional[ExportOptions] = None,
    progress: Optional[Progress] = None,
) -> ExportSummary:
    """Write training chips for ``image_path`` from the polygons in ``labels_path``: plan
    every chip first (plan_export), then write them (write_export)."""
    options = options or ExportOptions()
    progress = progress or Progress()
    image_path, output_folder = Path(image_path), Path(output_folder)
    if not image_path.is_file():
        raise UserError(f"Image not found: {image_path}.")
    options.check()
    if (output_folder / MANIFEST_NAME).exists() and not options.overwrite:
        raise UserError(f"{output_folder} already holds a chip export; choose an empty folder or ask to overwrite.")
    with open_raster(image_path, role="Image") as src:
        plan = plan_export(src, image_path, Path(labels_path), options, progress)
        summary = write_export(src, image_path, output_folder, plan, options, progress)
    progress.report(1.0, "Done")
    return summary


def plan_export(
    src: "rasterio.DatasetReader", image_path: Path, labels_path: Path, options: ExportOptions, progress: Progress
) -> ExportPlan:
    """Check the image and labels against each other and place every chip (nothing written)."""
    if src.transform.e >= 0:
        raise UserError(f"{image_path.name} is flipped (rows run south to north); warp it to a north-up grid first (gdalwarp).")
    bands = list(options.bands) if options.bands is not None else (
        [1, 2, 3] if src.count >= 3 else list(range(1, src.count + 1)))
    if any(b < 1 or b > src.count for b in bands):
        raise UserError(f"{image_path.name} has {src.count} band(s); bands {list(bands)} are not all there.")
    gsd_m = options.gsd_m if options.gsd_m is not None else _default_gsd(src, options.checkpoint_path)
    if gsd_m <= 0:
        raise UserError(f"The ground sample distance must be positive; got {gsd_m}.")
    labels = read_labels(labels_path, options.labels_layer, src.crs.to_wkt(), options.unreviewed)
    image_box = box(*src.bounds)
    on_image = [label for label in labels if label.geometry.intersects(image_box)]
    if not on_image:
        raise UserError(f"No polygon of {labels_path.name} falls on {image_path.name}; pick the image the labels were drawn on.")
    grid = _grid_for(src, gsd_m)
    rng = np.random.default_rng(options.seed)
    progress.report(0.05, "Planning chips")
    size = options.chip_size_px
    positives = _plan_positive_chips(on_image, grid, size, options.buffer_m)
    negatives = _plan_negative_chips(on_image, grid, size)
    wanted_background = int(round(options.negatives_per_positive * len(positives)))
    # Background chips keep clear of every slump in the layer, including those off this image.
    background = _plan_background_chips(src, bands, labels, grid, size, options.buffer_m, wanted_background, rng)
    chips = positives + negatives + background
    warnings = assign_spatial_split(chips, options.block_size_m or 5 * size * gsd_m, options.val_fraction, rng)
    if len(background) < wanted_background:
        warnings.append(f"Only {len(background)} of {wanted_background} background chips fit away from the slumps.")
    return ExportPlan(bands, float(gsd_m), grid, on_image, chips, warnings)


def write_export(
    src: "rasterio.DatasetReader", image_path: Path, output_folder: Path, plan: ExportPlan, options: ExportOptions,
    progress: Progress,
) -> ExportSummary:
    """Write the planned chips, the manifest and the ARTS GeoJSON of the labels."""
    (output_folder / "images").mkdir(parents=True, exist_ok=True)
    (output_folder / "masks").mkdir(parents=True, exist_ok=True)
    records: List[ChipRecord] = []
    counters = {"positive": 0, "negative": 0, "background": 0}
    for k, chip in enumerate(plan.chips):
        progress.check_cancelled()
        counters[chip.kind] += 1
        name = f"{image_path.stem}_{chip.kind}_{counters[chip.kind]:04d}"
        image_rel, mask_rel, slump_pixels = _write_chip(src, plan.bands, chip, plan.labels_on_image, plan.grid, output_folder, name)
        records.append(ChipRecord(image_rel, mask_rel, chip.split, slump_pixels, image_path.name, plan.gsd_m))
        progress.report(0.1 + 0.85 * (k + 1) / max(len(plan.chips), 1), f"Chip {k + 1} of {len(plan.chips)}")
    manifest = write_manifest(output_folder, records)
    geojson = output_folder / LABELS_GEOJSON
    _write_arts_geojson(geojson, plan.labels_on_image, src.crs.to_wkt(), options.base_map_source or image_path.name,
                        plan.gsd_m, options.base_map_date, options.creator_lab)
    return ExportSummary(
        output_folder=output_folder,
        manifest=manifest,
        labels_geojson=geojson,
        gsd_m=plan.gsd_m,
        n_chips=len(records),
        n_positive_chips=counters["positive"],
        n_negative_chips=counters["negative"],
        n_background_chips=counters["background"],
        n_train=sum(r.split == "train" for r in records),
        n_val=sum(r.split == "val" for r in records),
        n_positive_labels=sum(label.train_class == review.POSITIVE for label in plan.labels_on_image),
        n_negative_labels=sum(label.train_class == review.NEGATIVE for label in plan.labels_on_image),
        warnings=plan.warnings,
    )
