"""Build a training-chip folder from the shared Arctic thaw slump chips (Woodwell, MIT).

Labels come from rasterising the expert-corrected ``GroundTruth_Final.geojson`` on each
chip's own grid. Band 4 of the chips is the *uncorrected* starting outline and is never
used. Pixels that are ``-inf``/non-finite or 0 in every band lie outside the imaged area
and become ``MASK_IGNORE``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from ..core.chip_format import MASK_BACKGROUND, MASK_IGNORE, MASK_SLUMP, ChipRecord, write_manifest
from ..core.errors import UserError
from ..core.progress import Progress
from ..core.scaling import valid_pixels

GROUND_TRUTH_NAME = "GroundTruth_Final.geojson"
RGB_BANDS = (1, 2, 3)  # band 4 is the uncorrected outline: not truth, not an input


def rasterise_ground_truth(polygons: list, transform, shape: tuple) -> np.ndarray:
    """0/1 mask of the ``Positive`` polygons on a grid (pixel centres inside the polygon)."""
    from rasterio import features

    if not polygons:
        return np.zeros(shape, dtype=np.uint8)
    return features.rasterize(
        [(geom, 1) for geom in polygons], out_shape=shape, transform=transform, fill=0, dtype="uint8"
    )


def _read_positive_polygons(ground_truth: Path) -> list:
    import fiona
    from shapely.geometry import shape

    with fiona.open(ground_truth) as src:
        return [
            shape(feat["geometry"])
            for feat in src
            if feat["geometry"] is not None and (feat["properties"].get("TrainClass") or "Positive") == "Positive"
        ]


def build_arctic_chips(
    source_folder: Path,
    output_folder: Path,
    val_every: int = 0,
    progress: Optional[Progress] = None,
) -> List[ChipRecord]:
    """Write ``images/``, ``masks/`` and ``manifest.csv`` under ``output_folder``.

    ``val_every`` > 0 puts every n-th chip (sorted by name) in the ``val`` split; 0 marks all
    chips ``train`` (cross-validation makes its own folds).
    """
    import rasterio
    from shapely.geometry import box

    source_folder, output_folder = Path(source_folder), Path(output_folder)
    chips = sorted((source_folder / "chips").glob("*.tif"))
    truth = source_folder / GROUND_TRUTH_NAME
    if not chips or not truth.is_file():
        raise UserError(f"{source_folder} needs chips/*.tif and {GROUND_TRUTH_NAME} (the shared arctic_rts_chips folder).")
    polygons = _read_positive_polygons(truth)
    progress = progress or Progress()
    (output_folder / "images").mkdir(parents=True, exist_ok=True)
    (output_folder / "masks").mkdir(parents=True, exist_ok=True)
    records: List[ChipRecord] = []
    for index, chip in enumerate(chips):
        progress.check_cancelled()
        with rasterio.open(chip) as src:
            data = src.read(list(RGB_BANDS)).astype(np.float32)
            profile = src.profile
            transform, shape = src.transform, (src.height, src.width)
            footprint = box(*src.bounds)
            gsd = abs(src.transform.a)
        valid = valid_pixels(data, nodata=None)
        data[:, ~valid] = 0.0  # -inf would poison every statistic downstream
        on_chip = [p for p in polygons if p.intersects(footprint)]
        mask = rasterise_ground_truth(on_chip, transform, shape)
        mask = np.where(valid, mask, MASK_IGNORE).astype(np.uint8)
        image_rel, mask_rel = f"images/{chip.stem}.tif", f"masks/{chip.stem}.tif"
        image_profile = dict(profile, count=3, dtype="float32", nodata=0.0, compress="deflate")
        with rasterio.open(output_folder / image_rel, "w", **image_profile) as dst:
            dst.write(data)
        mask_profile = dict(profile, count=1, dtype="uint8", nodata=None, compress="deflate")
        with rasterio.open(output_folder / mask_rel, "w", **mask_profile) as dst:
            dst.write(mask, 1)
        split = "val" if val_every > 0 and index % val_every == val_every - 1 else "train"
        records.append(
            ChipRecord(image_rel, mask_rel, split, int((mask == MASK_SLUMP).sum()), chip.name, gsd)
        )
        progress.report((index + 1) / len(chips), f"chip {index + 1}/{len(chips)}")
    write_manifest(output_folder, records)
    return records


__all__ = ["build_arctic_chips", "rasterise_ground_truth", "MASK_BACKGROUND"]
