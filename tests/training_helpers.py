"""Generated training-chip folders with known truth (bright lobes on textured ground)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import rasterio
from rasterio.transform import from_origin

from thaw_slump_mapper.core.chip_format import ChipRecord, write_manifest

CRS = "EPSG:32608"


def make_chip_folder(
    folder: Path, n_chips: int = 8, size: int = 64, gsd: float = 2.0, bands: int = 3, dtype: str = "uint8",
    seed: int = 0, mask_size: Optional[int] = None, val_rows: int = 2,
) -> Path:
    """Chips whose slumps are bright ellipses; masks mark exactly those pixels."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    scale = 255 if dtype == "uint8" else 4000
    records = []
    for i in range(n_chips):
        yy, xx = np.mgrid[0:size, 0:size]
        cy, cx = rng.uniform(0.25, 0.75, 2) * size
        ry, rx = rng.uniform(0.1, 0.2, 2) * size
        slump = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        ground = 0.35 + 0.08 * rng.standard_normal((size, size))
        image = np.stack([ground + 0.4 * slump * (0.8 + 0.1 * b) for b in range(bands)])
        image = (np.clip(image, 0.01, 1.0) * scale).astype(dtype)
        transform = from_origin(500000 + i * 1000, 7600000, gsd, gsd)
        image_rel, mask_rel = f"images/chip_{i:03d}.tif", f"masks/chip_{i:03d}.tif"
        profile = dict(driver="GTiff", width=size, height=size, crs=CRS, transform=transform)
        with rasterio.open(folder / image_rel, "w", count=bands, dtype=dtype, **profile) as dst:
            dst.write(image)
        msize = mask_size or size
        mask = np.zeros((msize, msize), dtype=np.uint8)
        mask[: min(size, msize), : min(size, msize)] = slump[:msize, :msize]
        with rasterio.open(folder / mask_rel, "w", count=1, dtype="uint8", **dict(profile, width=msize, height=msize)) as dst:
            dst.write(mask, 1)
        split = "val" if i >= n_chips - val_rows else "train"
        records.append(ChipRecord(image_rel, mask_rel, split, int(slump.sum()), "synthetic.tif", gsd))
    write_manifest(folder, records)
    return folder
