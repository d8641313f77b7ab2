"""Build a training-chip folder from the shared Sentinel-2 sites (Copernicus data 2021, MIT).

Each site is one 251 x 251 px, 10 m Sentinel-2 L2A clip digitised by 10-12 experts; the
consensus outlines (drawn by at least half of them) are the labels. Pixels outside the
area the experts were asked to map (``<site>_AOI_2500.geojson``) may hold slumps nobody
drew, so they are marked ignore, never background. Chips are overlapping windows of the
scene in R, G, B order (bands 3, 2, 1 in both scenes), uint16 reflectance x 10000.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..core.chip_format import MASK_IGNORE, MASK_SLUMP, ChipRecord, write_manifest
from ..core.errors import UserError
from ..core.progress import Progress
from .arctic_chips_builder import rasterise_ground_truth

RGB_BANDS = (3, 2, 1)
SITES = ("Peel", "Bykovsky")


def _read_polygons(path: Path) -> list:
    import fiona
    from shapely.geometry import shape

    with fiona.open(path) as src:
        return [shape(f["geometry"]) for f in src if f["geometry"] is not None]


def _window_starts(length: int, chip: int, stride: int) -> List[int]:
    if length <= chip:
        return [0]
    starts = list(range(0, length - chip + 1, stride))
    if starts[-1] != length - chip:
        starts.append(length - chip)
    return starts


def build_sentinel2_chips(
    sites_folder: Path,
    output_folder: Path,
    sites: Sequence[str] = SITES,
    chip_size: int = 128,
    stride: int = 96,
    progress: Optional[Progress] = None,
) -> List[ChipRecord]:
    """Write ``images/``, ``masks/`` and ``manifest.csv``; ``source`` names the site (for folds by site)."""
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.windows import Window

    sites_folder, output_folder = Path(sites_folder), Path(output_folder)
    progress = progress or Progress()
    (output_folder / "images").mkdir(parents=True, exist_ok=True)
    (output_folder / "masks").mkdir(parents=True, exist_ok=True)
    records: List[ChipRecord] = []
    for site in sites:
        scenes = sorted(sites_folder.glob(f"{site}_S2_*.tif"))
        consensus, aoi = sites_folder / f"{site}_consensus.geojson", sites_folder / f"{site}_AOI_2500.geojson"
        if not scenes or not consensus.is_file() or not aoi.is_file():
            raise UserError(f"{sites_folder} needs {site}_S2_*.tif, {consensus.name} and {aoi.name} (the shared sentinel2_sites folder).")
        progress.check_cancelled()
        with rasterio.open(scenes[0]) as src:
            data = src.read(list(RGB_BANDS))
            profile, transform, shape = src.profile, src.transform, (src.height, src.width)
            nodata = src.nodata
        valid = (data != (nodata if nodata is not None else 0)).all(axis=0)
        mask = rasterise_ground_truth(_read_polygons(consensus), transform, shape)
        inside_aoi = ~geometry_mask(_read_polygons(aoi), shape, transform)
        mask = np.where(valid & inside_aoi, mask, MASK_IGNORE).astype(np.uint8)
        for r0 in _window_starts(shape[0], chip_size, stride):
            for c0 in _window_starts(shape[1], chip_size, stride):
                window = Window(c0, r0, min(chip_size, shape[1]), min(chip_size, shape[0]))
                sl = (slice(r0, r0 + window.height), slice(c0, c0 + window.width))
                name = f"{site}_r{r0:03d}_c{c0:03d}"
                chip_transform = rasterio.windows.transform(window, transform)
                common = dict(profile, height=window.height, width=window.width, transform=chip_transform, compress="deflate")
                with rasterio.open(output_folder / f"images/{name}.tif", "w", **dict(common, count=3, dtype="uint16", nodata=0)) as dst:
                    dst.write(data[(slice(None),) + sl])
                chip_mask = mask[sl]
                with rasterio.open(output_folder / f"masks/{name}.tif", "w", **dict(common, count=1, dtype="uint8", nodata=None)) as dst:
                    dst.write(chip_mask, 1)
                records.append(ChipRecord(f"images/{name}.tif", f"masks/{name}.tif", "train",
                                          int((chip_mask == MASK_SLUMP).sum()), site, abs(float(transform.a))))
        progress.report(len(records) / max(1, len(records)), f"{site}: done")
    write_manifest(output_folder, records)
    return records
