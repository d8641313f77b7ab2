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

from ..engine.errors import UserError

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
