"""The client's half of a batch: read the per-scene result files, merge them into one
GeoPackage (slumps, de-duplicated where scenes overlap, and a `scenes` layer), written under
a temporary name and renamed into place."""
from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import fiona
import shapely
from rasterio.crs import CRS
from shapely import wkt as shapely_wkt
from shapely.geometry import mapping, shape

from ..detect import DETECTION_SCHEMA
from ..measures import true_area_perimeter
from ..vector_io import PolygonFeature, read_polygons, reproject_geometry, write_polygons
from .dedupe import Detection, Slump, deduplicate
from .scenes import Scene
from .worker import SCENE_LAYER, SLUMP_LAYER, one_line, scene_file

INVENTORY_LAYER = "thaw_slumps"
SCENES_LAYER = "scenes"
INVENTORY_SCHEMA = dict(DETECTION_SCHEMA, **{
    "scene": "str:80", "scene_id": "int", "acquired": "str:10", "sources": "str", "n_scenes": "int",
})
SCENES_SCHEMA = {
    "scene": "str:80", "path": "str", "source": "str:254", "status": "str:8", "reason": "str",
    "acquired": "str:10", "bands": "str:40", "n_slumps": "int", "n_inventory": "int", "area_m2": "float",
    "elapsed_s": "float", "worker": "str:120", "finished": "str:32",
}
EDGE_TOLERANCE_PIXELS = 0.5


@dataclass
class SceneResult:
    """A done scene as read back from its result file."""

    record: Dict[str, Any]
    footprint: Any
    crs_wkt: str
    features: List[PolygonFeature]


@dataclass
class MergeSummary:
    n_slumps: int = 0
    n_detections: int = 0
    n_merged: int = 0            # detections folded into another scene's slump
    crs_wkt: str = ""
    scene_rows: List[Dict[str, Any]] = field(default_factory=list)


def read_scene_result(path: Path) -> SceneResult:
    with fiona.open(str(path), layer=SCENE_LAYER) as src:
        feature = next(iter(src))
        record, footprint, crs_wkt = dict(feature.properties), shape(feature.geometry), src.crs_wkt
    slumps = read_polygons(path, SLUMP_LAYER).features
    return SceneResult(record, footprint, crs_wkt, slumps)


def merge_inventory(output: Path, scenes: Sequence[Scene], work_dir: Path, statuses: Dict[str, Dict[str, Any]]) -> MergeSummary:
    """Write the merged inventory to ``output`` (replaced atomically). ``statuses`` holds each
    scene's outcome of this run (failed, skipped); a scene with a result file is done."""
    done = _read_done(scenes, work_dir, statuses)
    crs_wkt = _inventory_crs([done[s.key].crs_wkt for s in scenes if s.key in done])
    detections = [d for s in scenes if s.key in done for d in _detections(s, done[s.key], crs_wkt)]
    slumps = deduplicate(detections)
    features = _inventory_features(slumps, done, crs_wkt)
    per_scene = Counter(slump.best.scene for slump in slumps)
    rows = [_scene_row(s, done.get(s.key), statuses.get(s.key), per_scene[s.key], crs_wkt) for s in scenes]
    partial = output.with_name(f"{output.stem}{'.partial-' + uuid.uuid4().hex[:12]}{output.suffix}")
    try:
        write_polygons(partial, INVENTORY_LAYER, features, crs_wkt, INVENTORY_SCHEMA)
        _write_scenes_layer(partial, rows, crs_wkt)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    n_merged = len(detections) - len(slumps)
    return MergeSummary(len(features), len(detections), n_merged, crs_wkt, rows)


def _read_done(scenes: Sequence[Scene], work_dir: Path, statuses: Dict[str, Dict[str, Any]]) -> Dict[str, SceneResult]:
    """The done scenes' results. A result file that cannot be read (a damaged disk, a hand
    edit) makes its scene failed and is removed, so the next run maps the scene again."""
    done = {}
    for scene in scenes:
        path = scene_file(work_dir, scene.key)
        if not path.exists():
            continue
        try:
            done[scene.key] = read_scene_result(path)
        except Exception as err:  # noqa: BLE001 - one unreadable result must not sink the inventory
            statuses[scene.key] = {"status": "failed", "reason": f"its result file could not be read ({one_line(err)}); run again to map it again"}
            path.unlink(missing_ok=True)
    return done


def _inventory_crs(scene_crs: List[str]) -> str:
    """The CRS most scenes share (the first of the tied); WGS 84 when no scene is done."""
    if not scene_crs:
        return CRS.from_epsg(4326).to_wkt()
    keys = [CRS.from_wkt(w).to_string() for w in scene_crs]
    winner = Counter(keys).most_common(1)[0][0]
    return scene_crs[keys.index(winner)]


def _detections(scene: Scene, result: SceneResult, crs_wkt: str) -> List[Detection]:
    tolerance = EDGE_TOLERANCE_PIXELS * float(result.record.get("pixel_size") or 0.0)
    edge = result.footprint.exterior
    out = []
    for feature in result.features:
        cut = feature.geometry.distance(edge) <= tolerance
        geometry = reproject_geometry(feature.geometry, result.crs_wkt, crs_wkt)
        out.append(Detection(geometry, dict(feature.properties), scene.key, scene.name, cut))
    return out


def _inventory_features(slumps: List[Slump], done: Dict[str, SceneResult], crs_wkt: str) -> List[PolygonFeature]:
    crs = CRS.from_wkt(crs_wkt)
    features = []
    for slump in sorted(slumps, key=lambda s: (s.best.scene, int(s.best.properties.get("id") or 0))):
        props = dict(slump.best.properties)
        props.update(scene=slump.best.scene, scene_id=props.get("id"), acquired=done[slump.best.scene].record.get("acquired") or "",
                     sources="; ".join(slump.sources), n_scenes=len(slump.scenes),
                     score_max=max(float(m.properties.get("score_max") or 0.0) for m in slump.members))
        if slump.unioned:
            area, perimeter = true_area_perimeter(slump.geometry, crs)
            props.update(area_m2=round(area, 2), perimeter_m=round(perimeter, 2),
                         orig_wkt=shapely_wkt.dumps(slump.geometry, rounding_precision=3))
        props["id"] = len(features) + 1
        features.append(PolygonFeature(slump.geometry, props))
    return features


def _scene_row(scene: Scene, result: Optional[SceneResult], status: Optional[Dict[str, Any]], kept: int, crs_wkt: str) -> Dict[str, Any]:
    row: Dict[str, Any] = {name: None for name in SCENES_SCHEMA}
    row.update(scene=scene.key, path=str(scene.path), source=scene.name, bands=",".join(map(str, scene.bands or ())))
    if result is not None:
        row.update({k: result.record.get(k) for k in ("acquired", "n_slumps", "area_m2", "elapsed_s", "worker", "finished")})
        row.update(status="done", reason="", n_inventory=kept, geometry=_footprint(result, crs_wkt))
        return row
    status = status or {"status": "failed", "reason": "not run: the batch stopped before this scene"}
    row.update(status=status["status"], reason=status.get("reason", ""), elapsed_s=status.get("elapsed_s"),
               worker=status.get("worker"), n_slumps=0, n_inventory=0)
    return row


def _footprint(result: SceneResult, crs_wkt: str):
    """The scene's bounds in the inventory CRS; edges densified so they stay true when reprojected."""
    if CRS.from_wkt(result.crs_wkt) == CRS.from_wkt(crs_wkt):
        return result.footprint
    densified = shapely.segmentize(result.footprint, max(result.footprint.length / 400.0, 1e-9))
    return reproject_geometry(densified, result.crs_wkt, crs_wkt)


def _write_scenes_layer(path: Path, rows: List[Dict[str, Any]], crs_wkt: str) -> None:
    schema = {"geometry": "Polygon", "properties": SCENES_SCHEMA}
    with fiona.open(str(path), "w", driver="GPKG", layer=SCENES_LAYER, schema=schema, crs_wkt=crs_wkt) as dst:
        dst.writerecords(
            {"geometry": mapping(row["geometry"]) if row.get("geometry") is not None else None,
             "properties": {k: row.get(k) for k in SCENES_SCHEMA}}
            for row in rows
        )
