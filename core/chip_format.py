"""The training-chip format shared by label export (writer) and training (reader).

A folder with ``images/*.tif`` (GeoTIFF chips in the model's bands), ``masks/*.tif``
(uint8 on the same grid: 0 background, 1 slump, 255 ignore/nodata) and ``manifest.csv``
whose header is exactly ``image,mask,split,slump_pixels,source,gsd``. Readers ignore
extra columns so the format can grow.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List

import numpy as np

from .errors import UserError

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("image", "mask", "split", "slump_pixels", "source", "gsd")
MASK_BACKGROUND, MASK_SLUMP, MASK_IGNORE = 0, 1, 255
SPLITS = ("train", "val")


@dataclass
class ChipRecord:
    image: str  # relative to the folder, e.g. images/chip_0001.tif
    mask: str
    split: str
    slump_pixels: int
    source: str
    gsd: float


def write_manifest(folder: Path, records: Iterable[ChipRecord]) -> Path:
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_COLUMNS)
        for r in records:
            if r.split not in SPLITS:
                raise ValueError(f"split must be train or val, got {r.split!r}")
            writer.writerow([r.image, r.mask, r.split, int(r.slump_pixels), r.source, f"{float(r.gsd):g}"])
    return path


def read_manifest(folder: Path) -> List[ChipRecord]:
    """Rows of a chip folder's manifest; a missing or malformed manifest is a UserError."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise UserError(f"Chip folder not found: {folder}.")
    if not path.is_file():
        raise UserError(f"{folder} has no {MANIFEST_NAME}; export labels with `export-labels` to make a chip folder.")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; the header must be {','.join(MANIFEST_COLUMNS)}.")
        records = []
        for line, row in enumerate(reader, start=2):
            try:
                records.append(
                    ChipRecord(
                        image=row["image"], mask=row["mask"], split=(row["split"] or "train").strip(),
                        slump_pixels=int(float(row["slump_pixels"] or 0)), source=row["source"], gsd=float(row["gsd"]),
                    )
                )
            except (TypeError, ValueError):
                raise UserError(f"{path} line {line} is malformed (slump_pixels and gsd must be numbers).") from None
    if not records:
        raise UserError(f"{path} lists no chips; the folder is empty.")
    return records


# --- Reading chips for training ------------------------------------------------------------
# Kept beside the format so that every reader applies the same checks and the same messages.


@dataclass
class LoadedChip:
    """One chip in memory: raw band values (C, H, W), its mask and where it is imaged."""

    name: str
    image: "np.ndarray"  # float32 raw values, invalid pixels set to 0
    valid: "np.ndarray"  # bool (H, W)
    mask: "np.ndarray"  # uint8 (H, W): 0, 1 or 255
    gsd: float
    split: str
    folder: str


def load_chip_folder(folder: Path, n_bands: int, band_names: Iterable[str] = ()) -> List["LoadedChip"]:
    """Read every chip of a folder, checking what training needs; each problem is a UserError."""
    import numpy as np
    import rasterio

    from .scaling import valid_pixels

    folder = Path(folder)
    records = read_manifest(folder)
    names = "/".join(band_names) or f"{n_bands} bands"
    chips: List[LoadedChip] = []
    for rec in records:
        image_path, mask_path = folder / rec.image, folder / rec.mask
        for what, path in (("image", image_path), ("mask", mask_path)):
            if not path.is_file():
                raise UserError(f"{folder / MANIFEST_NAME} lists the {what} {path.name}, which is missing; re-export the chip folder.")
        with rasterio.open(image_path) as src:
            if src.count != n_bands:
                raise UserError(
                    f"Chip {rec.image} has {src.count} band(s) but the base model takes {n_bands} ({names}); "
                    f"export chips with those bands or pick a base checkpoint made for them."
                )
            image = src.read().astype(np.float32)
            nodata = src.nodata
            image_shape, image_transform = (src.height, src.width), src.transform
        with rasterio.open(mask_path) as src:
            mask = src.read(1)
            mask_shape, mask_transform = (src.height, src.width), src.transform
        if mask_shape != image_shape or not mask_transform.almost_equals(image_transform):
            raise UserError(
                f"Mask {rec.mask} ({mask_shape[1]}x{mask_shape[0]} px) does not match its image {rec.image} "
                f"({image_shape[1]}x{image_shape[0]} px) on the same grid; re-export the chip folder."
            )
        bad = ~np.isin(mask, (MASK_BACKGROUND, MASK_SLUMP, MASK_IGNORE))
        if bad.any():
            raise UserError(f"Mask {rec.mask} holds values other than 0, 1 and 255; masks must be 0 background, 1 slump, 255 ignore.")
        valid = valid_pixels(image, nodata=nodata) & (mask != MASK_IGNORE)
        image[:, ~valid] = 0.0
        gsd = float(rec.gsd) if rec.gsd and rec.gsd > 0 else abs(float(image_transform.a))
        chips.append(LoadedChip(Path(rec.image).stem, image, valid, mask.astype(np.uint8), gsd, rec.split, str(folder)))
    return chips
