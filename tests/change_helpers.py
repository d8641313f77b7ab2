"""Two dated inventories with known change, made from the real Banks Island outlines
(../shared/data/rts_inventories, UTM 10N).

The earlier layer is the real inventory less a few slumps kept back as "new". The later layer
changes it in known ways:

* grown slumps: the Minkowski sum of the outline with a segment of length d in direction theta
  (a headwall that retreated d metres). Its boundary lies at most d from the old outline, and
  exactly d at the old outline's extreme point in direction theta, so the true maximum
  retreat is d;
* a multipolygon slump grown the same way (stays one slump);
* a slump that shrank by 2 m all round (digitising noise): still a repeat, nothing moved out;
* two neighbours bridged into one outline (merged); one slump cut in two (split);
* slumps dropped (not seen again) and slumps that appear (new);
* a touching pair, one of them grown away from the other (two repeats, not a merge);
* every other slump unchanged (repeat, zero change).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry.base import BaseGeometry

from thaw_slump_mapper.engine.vector_io import PolygonFeature, read_polygons, write_polygons

BANKS = "rts_inventories/Banks_Island_slumps.shp"
EARLIER_DATE, LATER_DATE = "2019-07-15", "2021-07-20"
YEARS = (np.datetime64(LATER_DATE) - np.datetime64(EARLIER_DATE)).astype(int) / 365.25
# (retreat m, direction deg clockwise from north) for the grown isolated slumps
GROWTH = ((6.0, 0.0), (12.0, 60.0), (20.0, 135.0), (30.0, 225.0), (45.0, 310.0))
MULTIPOLYGON_GROWTH = (10.0, 90.0)
TOUCHING_GROWTH_M = 8.0
ISOLATION_M = 110.0  # grown and dropped slumps have no neighbour this close
SCHEMA = {"name": "str:40"}


@dataclass
class Truth:
    earlier: List[BaseGeometry]
    later: List[BaseGeometry]
    later_names: List[str]
    crs_wkt: str
    expected_class: Dict[str, str] = field(default_factory=dict)  # later name -> class
    expected_retreat: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # later name -> (d, theta)
    earlier_area: Dict[str, float] = field(default_factory=dict)  # later name -> area of its earlier outline(s)
    not_seen: List[int] = field(default_factory=list)  # indices into earlier
    touching: Tuple[str, str] = ("", "")


def sweep(geometry: BaseGeometry, distance: float, direction_deg: float) -> BaseGeometry:
    """Minkowski sum of a polygon with the segment from 0 to distance along direction_deg."""
    dx = distance * math.sin(math.radians(direction_deg))
    dy = distance * math.cos(math.radians(direction_deg))
    pieces = [geometry, affinity.translate(geometry, dx, dy)]
    for polygon in getattr(geometry, "geoms", [geometry]):
        for ring in (polygon.exterior, *polygon.interiors):
            xy = np.asarray(ring.coords)
            for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
                pieces.append(shapely.Polygon([(x0, y0), (x1, y1), (x1 + dx, y1 + dy), (x0 + dx, y0 + dy)]).buffer(0))
    return shapely.union_all(pieces)


def _nearest_distances(geoms: List[BaseGeometry]) -> np.ndarray:
    tree = shapely.STRtree(geoms)
    out = np.full(len(geoms), np.inf)
    for i, g in enumerate(geoms):
        for j in tree.query(g, predicate="dwithin", distance=ISOLATION_M * 2):
            if j != i:
                out[i] = min(out[i], g.distance(geoms[j]))
    return out


def _cut_in_two(geometry: BaseGeometry) -> List[BaseGeometry]:
    """The polygon cut by a 6 m strip through its centroid across its long axis."""
    rectangle = geometry.minimum_rotated_rectangle
    xy = np.asarray(rectangle.exterior.coords)[:3]
    edges = [xy[1] - xy[0], xy[2] - xy[1]]
    long_axis = max(edges, key=lambda v: np.hypot(*v))
    across = np.array([-long_axis[1], long_axis[0]]) / np.hypot(*long_axis)
    c = np.array(geometry.centroid.coords[0])
    strip = shapely.LineString([c - across * 5000, c + across * 5000]).buffer(3.0, cap_style="flat")
    return list(shapely.get_parts(geometry.difference(strip)))


def build_truth(shared_data: Path) -> Truth:
    layer = read_polygons(shared_data / BANKS)
    geoms = [f.geometry for f in layer.features]
    nearest = _nearest_distances(geoms)
    tree = shapely.STRtree(geoms)
    touching = next((int(a), int(b)) for a, b in zip(*tree.query(geoms, predicate="intersects")) if a < b)
    multipolygon = next(i for i, g in enumerate(geoms) if g.geom_type == "MultiPolygon")
    isolated = [i for i in np.argsort(-np.array([g.area for g in geoms])) if nearest[i] > ISOLATION_M
                and geoms[i].geom_type == "Polygon" and i not in touching]
    merge_pair = _merge_pair(geoms, nearest, tree, exclude={*touching, multipolygon})
    split = next(i for i in isolated if len(_cut_in_two(geoms[i])) == 2)
    pool = [i for i in isolated if i != split and i not in merge_pair]
    grown, dropped, new, shrunk = pool[:len(GROWTH)], pool[5:7], pool[7:10], pool[10]

    truth = Truth([], [], [], layer.crs_wkt)
    for i, g in enumerate(geoms):
        if i in new:
            continue
        truth.earlier.append(g)
        name = f"s{i}"
        if i in dropped:
            truth.not_seen.append(len(truth.earlier) - 1)
        elif i == split:
            for k, piece in enumerate(_cut_in_two(g)):
                _add(truth, f"{name}_{k}", piece, "split", g.area)
        elif i == merge_pair[0]:
            merged = _bridge(geoms[merge_pair[0]], geoms[merge_pair[1]])
            _add(truth, f"m{merge_pair[0]}_{merge_pair[1]}", merged, "merged", g.area + geoms[merge_pair[1]].area)
        elif i == merge_pair[1]:
            continue
        elif i in grown:
            d, theta = GROWTH[grown.index(i)]
            _add(truth, name, sweep(g, d, theta), "repeat", g.area, (d, theta))
        elif i == multipolygon:
            _add(truth, name, sweep(g, *MULTIPOLYGON_GROWTH), "repeat", g.area, MULTIPOLYGON_GROWTH)
        elif i == shrunk:
            _add(truth, name, g.buffer(-2.0), "repeat", g.area, (0.0, float("nan")))
        elif i == touching[0]:
            away = _direction(geoms[touching[1]].centroid, g.centroid)
            _add(truth, name, sweep(g, TOUCHING_GROWTH_M, away), "repeat", g.area, (TOUCHING_GROWTH_M, away))
        else:
            _add(truth, name, g, "repeat", g.area)
    for i in new:
        _add(truth, f"n{i}", geoms[i], "new", 0.0)
    truth.touching = (f"s{touching[0]}", f"s{touching[1]}")
    return truth


def _add(truth: Truth, name: str, geometry: BaseGeometry, change_class: str, earlier_area: float, retreat=None) -> None:
    truth.later.append(geometry)
    truth.later_names.append(name)
    truth.expected_class[name] = change_class
    truth.earlier_area[name] = earlier_area
    if retreat is not None:
        truth.expected_retreat[name] = retreat


def _direction(origin, target) -> float:
    return math.degrees(math.atan2(target.x - origin.x, target.y - origin.y)) % 360.0


def _merge_pair(geoms, nearest, tree, exclude) -> Tuple[int, int]:
    """Two neighbours 3-25 m apart with nothing else within the isolation distance."""
    for i, g in enumerate(geoms):
        if i in exclude:
            continue
        close = [int(j) for j in tree.query(g, predicate="dwithin", distance=ISOLATION_M) if j != i]
        if len(close) == 1 and 3.0 < g.distance(geoms[close[0]]) < 25.0 and close[0] not in exclude:
            others = [int(k) for k in tree.query(geoms[close[0]], predicate="dwithin", distance=ISOLATION_M)]
            if sorted(others) == sorted([i, close[0]]):
                return i, close[0]
    raise AssertionError("no isolated pair of neighbours to merge in the real inventory")


def _bridge(a: BaseGeometry, b: BaseGeometry) -> BaseGeometry:
    """One outline holding both neighbours: their union closed over the gap."""
    radius = a.distance(b) / 2.0 + 2.0
    closed = shapely.union_all([a, b]).buffer(radius).buffer(-radius)
    return shapely.union_all([closed, a, b])


def write_truth(truth: Truth, folder: Path, later_crs_wkt: str | None = None) -> Tuple[Path, Path]:
    """earlier.gpkg and later.gpkg (the later one optionally reprojected)."""
    from thaw_slump_mapper.engine.vector_io import reproject_geometry

    earlier = folder / "earlier.gpkg"
    later = folder / "later.gpkg"
    write_polygons(earlier, "slumps", [PolygonFeature(g, {"name": f"e{i}"}) for i, g in enumerate(truth.earlier)],
                   truth.crs_wkt, SCHEMA)
    crs = later_crs_wkt or truth.crs_wkt
    later_geoms = [reproject_geometry(g, truth.crs_wkt, crs) for g in truth.later] if later_crs_wkt else truth.later
    write_polygons(later, "slumps", [PolygonFeature(g, {"name": n}) for g, n in zip(later_geoms, truth.later_names)], crs, SCHEMA)
    return earlier, later
