"""Slumps through time: match dated slump inventories, classify change, measure headwall retreat.

Plain Python (shapely, fiona, rasterio); the CLI, Processing and the dock are front ends.
The rules (also in docs/CHANGE.md):

* Every layer is brought into one metric CRS: the CRS of the latest layer that is projected in
  metres, else a Lambert azimuthal equal-area CRS centred on the data.
* Consecutive dates are compared. An earlier slump A and a later slump B *match* when their
  overlap is at least ``min_overlap`` (default 10 %) of the smaller of the two. Touching
  slumps and slivers of digitising noise below that share are contacts, not matches.
* A later slump is ``new`` with no match, ``merged`` with two or more, ``split`` when its
  single match also matches other later slumps, and ``repeat`` otherwise. An earlier slump
  with no later match is ``not_seen_again`` (a candidate for stabilised).
* A feature is a slump: a multipolygon is one slump with several parts.
* Per later slump, its earlier outline E is the union of its matches. Area and perimeter
  change are B - E; headwall retreat is the outward distance of B's boundary from E (max and
  mean over the part of the boundary outside E); the growth direction is the direction
  of the largest outward move (from the earlier outline to the farthest later boundary point),
  in degrees clockwise from grid north.
  A slump that shrank stays a ``repeat`` with a negative area change and ``shrank = 1``; a
  matched slump whose headwall moved out at least ``min_retreat_m`` (default 1 m) is ``growing``.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import fiona
import numpy as np
import shapely
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from ..core.errors import UserError
from ..core.progress import Progress
from ..engine.measures import local_equal_area_crs, metres_per_unit
from ..engine.vector_io import PolygonFeature, list_layers, read_polygons, reproject_geometry, write_polygons
from .label_export import uid_for

REPEAT, NEW, MERGED, SPLIT = "repeat", "new", "merged", "split"
NOT_SEEN_AGAIN = "not_seen_again"
BASELINE = "baseline"  # the first date's outlines, in the history layer only
CHANGE_CLASSES = (REPEAT, NEW, MERGED, SPLIT)
ARTS_RELATIONSHIP_FIELDS = ("RepeatRTS", "MergedRTS", "SplitRTS", "NewRTS", "StabilizedRTS", "UnknownRelationship")

LAYER_CHANGE = "change"
LAYER_NOT_SEEN = "not_seen_again"
LAYER_GROWTH = "growth_areas"
LAYER_SUMMARY = "change_summary"
LAYER_HISTORY = "change_history"
OUTPUT_LAYERS = (LAYER_CHANGE, LAYER_NOT_SEEN, LAYER_GROWTH, LAYER_SUMMARY, LAYER_HISTORY)

DEFAULT_MIN_OVERLAP = 0.1
# A matched slump is "growing" when its headwall moved out at least this far; set it to the
# imagery's pixel size so that redrawing noise does not count as growth.
DEFAULT_MIN_RETREAT_M = 1.0
# Boundary sampling for retreat: 0.5 m keeps the sampling error far below a 3 m pixel;
# very long outlines get a coarser step so one slump never costs more than this many points.
SAMPLE_STEP_M = 0.5
MAX_SAMPLES = 20000
OUTWARD_TOLERANCE_M = 1e-6  # closer than this to the earlier outline is "on" it
FRONT_SHARE = 0.99  # boundary points this close to the maximum retreat give the growth direction
DATE_FIELD_CANDIDATES = (
    "date", "image_date", "imagedate", "img_date", "acq_date", "acquired", "acquisition_date", "basemapdate", "year",
)
UID_FIELD = "UID"
DAYS_PER_YEAR = 365.25

CHANGE_SCHEMA: Dict[str, str] = {
    "slump_id": "str:36", "UID": "str:36", "change_class": "str:16", "date": "date", "prev_date": "date",
    "years": "float", "area_m2": "float", "perimeter_m": "float", "prev_area_m2": "float",
    "area_change_m2": "float", "area_change_pct": "float", "area_change_m2_per_yr": "float",
    "perimeter_change_m": "float", "perimeter_change_pct": "float",
    "retreat_max_m": "float", "retreat_mean_m": "float", "retreat_max_m_per_yr": "float",
    "retreat_mean_m_per_yr": "float", "growth_direction_deg": "float", "growth_area_m2": "float",
    "growing": "int", "shrank": "int", "n_earlier": "int",
    **{name: "str" for name in ARTS_RELATIONSHIP_FIELDS},
    "source": "str:254", "source_index": "int",
}
NOT_SEEN_SCHEMA: Dict[str, str] = {
    "slump_id": "str:36", "UID": "str:36", "change_class": "str:16", "last_date": "date", "missing_on": "date",
    "area_m2": "float", "perimeter_m": "float", "source": "str:254", "source_index": "int",
}
GROWTH_SCHEMA: Dict[str, str] = {
    "slump_id": "str:36", "UID": "str:36", "change_class": "str:16", "date_from": "date", "date_to": "date",
    "years": "float", "growth_area_m2": "float", "retreat_max_m": "float", "retreat_max_m_per_yr": "float",
    "growth_direction_deg": "float", "earlier_UIDs": "str",
}
SUMMARY_SCHEMA: Dict[str, str] = {
    "date": "date", "years_since_previous": "float", "n_slumps": "int",
    **{f"n_{name}": "int" for name in (*CHANGE_CLASSES, NOT_SEEN_AGAIN)}, "n_growing": "int",
    "total_area_m2": "float", "area_change_m2": "float", "growth_area_m2": "float",
    "retreat_max_m_per_yr_median": "float",
}


# ---------------------------------------------------------------- inputs and dates


@dataclass(frozen=True)
class InventoryInput:
    """One polygon layer: a file, optionally a layer inside it."""

    path: Path
    layer: Optional[str] = None

    @classmethod
    def parse(cls, text: "str | Path") -> "InventoryInput":
        """``file.gpkg`` or QGIS's ``file.gpkg|layername=NAME``."""
        path, _, options = str(text).partition("|")
        match = re.search(r"layername=([^|]+)", options)
        return cls(Path(path), match.group(1) if match else None)

    @property
    def label(self) -> str:
        return self.path.name + (f"|{self.layer}" if self.layer else "")


@dataclass
class Slump:
    geometry: BaseGeometry  # in the working CRS (metres)
    uid: str  # ARTS UID of this outline
    date: dt.date
    source: str
    source_index: int  # order of the feature in its input layer (0-based), to join attributes back
    slump_id: str = ""
    area_m2: float = 0.0
    perimeter_m: float = 0.0


def parse_date(value: Any) -> Optional[dt.date]:
    """A date from a date, datetime, year number or text (YYYY-MM-DD, YYYYMMDD, YYYY, or an
    ARTS range "d1,d2", which gives its middle). A year alone means 1 July of that year."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.date(int(value), 7, 1) if float(value).is_integer() and 1800 <= value <= 2300 else None
    text = str(value).strip()
    if "," in text:
        ends = [parse_date(part) for part in text.split(",") if part.strip()]
        if not ends or any(e is None for e in ends):
            return None
        return min(ends) + (max(ends) - min(ends)) / 2
    # YYYY-MM-DD or YYYY/MM/DD, with any time after it; YYYYMMDD; YYYY
    found = re.match(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:$|[T ])", text) or re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)
    if found:
        try:
            return dt.date(*(int(part) for part in found.groups()))
        except ValueError:
            return None
    return parse_date(int(text)) if re.fullmatch(r"\d{4}", text) else None


def parse_dates_list(text: "str | Sequence[str] | None") -> Optional[List[dt.date]]:
    """``"2019-07-15,2021-07-20"`` (or a list) as dates; a bad entry is a UserError."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if str(p).strip()]
    dates = []
    for part in parts:
        parsed = parse_date(part)
        if parsed is None:
            raise UserError(f"Cannot read the date '{part}'; write dates as YYYY-MM-DD separated by commas, one per layer.")
        dates.append(parsed)
    return dates


def find_date_field(schema: Mapping[str, str], date_field: Optional[str]) -> Optional[str]:
    if date_field:
        return next((name for name in schema if name.lower() == date_field.lower()), None)
    lowered = {name.lower(): name for name in schema}
    return next((lowered[c] for c in DATE_FIELD_CANDIDATES if c in lowered), None)


# ---------------------------------------------------------------- loading


def _metric_crs(crs: Optional[CRS]) -> bool:
    return crs is not None and crs.is_projected and abs(metres_per_unit(crs) - 1.0) < 1e-9


def choose_working_crs(layers: Sequence[Tuple[Any, dt.date]]) -> CRS:
    """The CRS of the latest layer projected in metres; otherwise a local equal-area CRS."""
    for layer, _ in sorted(layers, key=lambda item: item[1], reverse=True):
        if _metric_crs(layer.crs):
            return layer.crs
    lonlat = CRS.from_epsg(4326)
    centres = [reproject_geometry(shapely.box(*shapely.total_bounds([f.geometry for f in layer.features])).centroid, layer.crs, lonlat)
               for layer, _ in layers if layer.features]
    return local_equal_area_crs(float(np.mean([c.x for c in centres])), float(np.mean([c.y for c in centres])))


def _feature_dates(layer: Any, name: str, fixed: Optional[dt.date], date_field: Optional[str]) -> List[dt.date]:
    if fixed is not None:
        return [fixed] * len(layer.features)
    found = find_date_field(layer.schema, date_field)
    if found is None:
        wanted = f"a date field '{date_field}'" if date_field else f"a date field ({', '.join(DATE_FIELD_CANDIDATES[:4])}...)"
        raise UserError(f"{name} has no date: give one date per layer (DATES=2019-07-15,2021-07-20 or --dates) or {wanted}.")
    dates = []
    for i, feature in enumerate(layer.features):
        parsed = parse_date(feature.properties.get(found))
        if parsed is None:
            raise UserError(
                f"{name}: feature {i + 1} has no readable date in field '{found}' ({feature.properties.get(found)!r}); "
                "fill it as YYYY-MM-DD or give one date per layer with DATES=."
            )
        dates.append(parsed)
    return dates


def _read_layer(inventory: InventoryInput) -> Any:
    layer = read_polygons(inventory.path, inventory.layer)
    if not layer.crs_wkt:
        raise UserError(f"{inventory.label} has no coordinate reference system; assign one (e.g. in QGIS) and try again.")
    return layer


def load_slumps(
    inputs: Sequence[InventoryInput], dates: Optional[Sequence[dt.date]], date_field: Optional[str]
) -> Tuple[Dict[dt.date, List[Slump]], CRS]:
    """Slumps grouped by date, in the working CRS."""
    if not inputs:
        raise UserError("Give at least one slump layer (two or more dates) to compare.")
    if dates is not None and len(dates) != len(inputs):
        raise UserError(f"{len(dates)} date(s) for {len(inputs)} layer(s); give exactly one date per layer, in the same order.")
    layers = [_read_layer(inventory) for inventory in inputs]
    per_feature = [
        _feature_dates(layer, inventory.label, dates[i] if dates else None, date_field)
        for i, (inventory, layer) in enumerate(zip(inputs, layers))
    ]
    working = choose_working_crs([(layer, max(ds, default=dt.date.min)) for layer, ds in zip(layers, per_feature)])
    # with DATES, a layer that is empty still marks its date (every earlier slump is then not seen again)
    by_date: Dict[dt.date, List[Slump]] = {d: [] for d in dates} if dates else {}
    for inventory, layer, feature_dates in zip(inputs, layers, per_feature):
        for index, (feature, date) in enumerate(zip(layer.features, feature_dates)):
            slump = _slump(feature, layer.crs, working, date, inventory.label, index)
            if slump.area_m2 > 0:  # a degenerate outline (a line, a point) is no slump
                by_date.setdefault(date, []).append(slump)
    if not any(by_date.values()):
        raise UserError("None of the layers holds a polygon; give slump layers with outlines to compare.")
    if len(by_date) < 2:
        raise UserError(
            f"All slumps carry one date ({next(iter(by_date), 'none')}); give two or more dated layers "
            "(DATES=d1,d2 with one date per layer, or a date field with several dates)."
        )
    return dict(sorted(by_date.items())), working


def _slump(feature: PolygonFeature, crs: CRS, working: CRS, date: dt.date, source: str, index: int) -> Slump:
    given_uid = feature.properties.get(UID_FIELD)
    # The ARTS UID of the outline as the user drew it (its own CRS), unless the layer has one.
    uid = str(given_uid) if given_uid not in (None, "") else uid_for(feature.geometry)
    geometry = reproject_geometry(feature.geometry, crs, working)
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    geometry = _polygonal(geometry)  # a repair can leave lines beside the polygons
    given_id = feature.properties.get("slump_id")
    return Slump(geometry, uid, date, source, index, slump_id=str(given_id) if given_id not in (None, "") else "",
                 area_m2=float(geometry.area), perimeter_m=float(geometry.length))


# ---------------------------------------------------------------- matching and classes


@dataclass
class Matching:
    """Overlaps between an earlier and a later inventory (indices into each list)."""

    strong: List[Tuple[int, int, float]]  # (earlier, later, overlap area m2)
    weak: List[Tuple[int, int]]  # contacts: touching, or overlap below the share
    _earlier_of: Dict[int, List[int]] = field(default_factory=dict, repr=False)
    _later_of: Dict[int, List[int]] = field(default_factory=dict, repr=False)
    _contacts_of: Dict[int, List[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:  # indexes, so that each look-up is O(1)
        for earlier_i, later_i, _ in self.strong:
            self._earlier_of.setdefault(later_i, []).append(earlier_i)
            self._later_of.setdefault(earlier_i, []).append(later_i)
        for earlier_i, later_i in self.weak:
            self._contacts_of.setdefault(later_i, []).append(earlier_i)

    def earlier_of(self, later: int) -> List[int]:
        return self._earlier_of.get(later, [])

    def later_of(self, earlier: int) -> List[int]:
        return self._later_of.get(earlier, [])

    def contacts_of(self, later: int) -> List[int]:
        """Earlier slumps this later one touches or overlaps below the share."""
        return self._contacts_of.get(later, [])


def match_inventories(earlier: Sequence[BaseGeometry], later: Sequence[BaseGeometry], min_overlap: float) -> Matching:
    """Pairs whose overlap is at least ``min_overlap`` of the smaller polygon match; any other
    intersecting pair (touching, slivers) is a contact."""
    if not earlier or not later:
        return Matching([], [])
    earlier_arr, later_arr = np.asarray(earlier, dtype=object), np.asarray(later, dtype=object)
    later_idx, earlier_idx = shapely.STRtree(earlier_arr).query(later_arr, predicate="intersects")
    overlap = shapely.area(shapely.intersection(earlier_arr[earlier_idx], later_arr[later_idx]))
    smaller = np.minimum(shapely.area(earlier_arr[earlier_idx]), shapely.area(later_arr[later_idx]))
    is_strong = (overlap > 0) & (overlap >= min_overlap * smaller)
    strong = [(int(earlier_i), int(later_i), float(a)) for earlier_i, later_i, a, s in zip(earlier_idx, later_idx, overlap, is_strong) if s]
    weak = [(int(earlier_i), int(later_i)) for earlier_i, later_i, s in zip(earlier_idx, later_idx, is_strong) if not s]
    return Matching(sorted(strong), sorted(weak))


def classify_later(matching: Matching, n_later: int) -> List[str]:
    classes = []
    for later in range(n_later):
        parents = matching.earlier_of(later)
        if not parents:
            classes.append(NEW)
        elif len(parents) > 1:
            classes.append(MERGED)
        elif len(matching.later_of(parents[0])) > 1:
            classes.append(SPLIT)
        else:
            classes.append(REPEAT)
    return classes


def not_seen_again(matching: Matching, n_earlier: int) -> List[int]:
    matched = {e for e, _, _ in matching.strong}
    return [i for i in range(n_earlier) if i not in matched]


def inherit_slump_ids(earlier: Sequence[Slump], later: Sequence[Slump], matching: Matching) -> None:
    """A later slump keeps an earlier slump's id when each is the other's largest overlap
    (so an id passes to one later slump only); every other later slump starts a new id,
    the ARTS UID of its own first outline."""
    best_later: Dict[int, Tuple[float, int]] = {}
    best_earlier: Dict[int, Tuple[float, int]] = {}
    for earlier_i, later_i, area in matching.strong:
        best_later[earlier_i] = max(best_later.get(earlier_i, (-1.0, -1)), (area, later_i))
        best_earlier[later_i] = max(best_earlier.get(later_i, (-1.0, -1)), (area, earlier_i))
    for later_i, slump in enumerate(later):
        earlier_i = best_earlier.get(later_i, (0.0, -1))[1]
        inherited = earlier_i >= 0 and best_later[earlier_i][1] == later_i
        slump.slump_id = earlier[earlier_i].slump_id if inherited else (slump.slump_id or slump.uid)


def arts_relationships(
    later: int, change_class: str, matching: Matching, earlier: Sequence[Slump], unmatched: set
) -> Dict[str, Optional[str]]:
    """ARTS relationship fields: comma-separated UIDs of the earlier polygons concerned."""
    fields: Dict[str, List[str]] = {name: [] for name in ARTS_RELATIONSHIP_FIELDS}
    parents = [earlier[e].uid for e in matching.earlier_of(later)]
    key = {REPEAT: "RepeatRTS", MERGED: "MergedRTS", SPLIT: "SplitRTS"}.get(change_class)
    if key:
        fields[key] = parents
    for e in matching.contacts_of(later):
        if e in unmatched:
            fields["StabilizedRTS"].append(earlier[e].uid)
        elif change_class == NEW:
            fields["NewRTS"].append(earlier[e].uid)
        else:
            fields["UnknownRelationship"].append(earlier[e].uid)
    return {name: (",".join(uids) if uids else None) for name, uids in fields.items()}


# ---------------------------------------------------------------- measures


def line_samples(lines: BaseGeometry, step_m: float) -> Tuple[np.ndarray, np.ndarray]:
    """(points evenly spaced along the lines, the lines' own vertices)."""
    parts = [p for p in shapely.get_parts(lines) if p.geom_type in ("LineString", "LinearRing") and p.length > 0]
    total = float(sum(p.length for p in parts))
    step = max(step_m, total / MAX_SAMPLES)
    evenly = [shapely.line_interpolate_point(p, np.arange(0.0, p.length, step)) for p in parts]
    vertices = shapely.points(shapely.get_coordinates(parts)) if parts else np.empty(0, dtype=object)
    return (np.concatenate(evenly) if evenly else np.empty(0, dtype=object)), vertices


def headwall_retreat(later: BaseGeometry, earlier: BaseGeometry, step_m: float = SAMPLE_STEP_M) -> Tuple[float, float, Optional[float]]:
    """(max and mean outward distance of the later boundary from the earlier polygon in m, growth
    direction in degrees clockwise from grid north or None when nothing moved outward).

    Only the part of the later boundary outside the earlier polygon can be away from it, so only
    that part is sampled (an unchanged slump costs one overlay). The mean is over that part. The
    direction is that of the largest move: from the nearest earlier point to the later boundary
    point farthest out (points within 1 % of the maximum are averaged, so a straight front
    counts as a whole)."""
    outside = later.boundary.difference(earlier)
    evenly, vertices = line_samples(outside, step_m)
    points = np.concatenate([evenly, vertices])
    if points.size == 0:
        return 0.0, 0.0, None
    shapely.prepare(earlier)
    distances = shapely.distance(points, earlier)
    distance_max = float(distances.max())
    if distance_max <= OUTWARD_TOLERANCE_M:
        return 0.0, 0.0, None
    front = distances >= FRONT_SHARE * distance_max
    lines = shapely.get_coordinates(shapely.shortest_line(points[front], earlier)).reshape(-1, 2, 2)
    east, north = (lines[:, 0, :] - lines[:, 1, :]).sum(axis=0)  # each line runs from later to earlier
    direction = float(math.degrees(math.atan2(east, north)) % 360.0)
    even_distances = distances[: evenly.size]
    outward = even_distances[even_distances > OUTWARD_TOLERANCE_M]
    return distance_max, float(outward.mean()) if outward.size else distance_max, direction


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def pair_measures(later: Slump, earlier: Sequence[Slump], years: float) -> Dict[str, Any]:
    """Area, perimeter, retreat and direction of a later slump against the union of its matches
    (empty for a new slump: its whole area is growth from nothing)."""
    out: Dict[str, Any] = {"area_m2": later.area_m2, "perimeter_m": later.perimeter_m, "years": years}
    if not earlier:
        out.update(area_change_m2=later.area_m2, perimeter_change_m=later.perimeter_m, shrank=0,
                   area_change_m2_per_yr=_ratio(later.area_m2, years), growth_area_m2=later.area_m2)
        return out
    union = shapely.union_all([s.geometry for s in earlier])
    before_area, before_perimeter = float(union.area), float(union.length)
    retreat_max, retreat_mean, direction = headwall_retreat(later.geometry, union)
    growth = _polygonal(later.geometry.difference(union))
    area_change = later.area_m2 - before_area
    out.update(
        prev_area_m2=before_area, area_change_m2=area_change,
        area_change_pct=100.0 * area_change / before_area if before_area else None,
        area_change_m2_per_yr=_ratio(area_change, years),
        perimeter_change_m=later.perimeter_m - before_perimeter,
        perimeter_change_pct=100.0 * (later.perimeter_m - before_perimeter) / before_perimeter if before_perimeter else None,
        retreat_max_m=retreat_max, retreat_mean_m=retreat_mean,
        retreat_max_m_per_yr=_ratio(retreat_max, years), retreat_mean_m_per_yr=_ratio(retreat_mean, years),
        growth_direction_deg=direction, growth_area_m2=float(growth.area), shrank=int(area_change < 0),
        _growth=growth,
    )
    return out


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the areal parts (a difference can leave lines or points where outlines touch)."""
    polygons: List[BaseGeometry] = []
    for part in shapely.get_parts(geometry):
        if part.geom_type == "Polygon" and not part.is_empty:
            polygons.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):  # a repair may nest them
            polygons.extend(_polygonal(part).geoms)
    return shapely.MultiPolygon(polygons) if polygons else shapely.MultiPolygon()


# ---------------------------------------------------------------- the whole analysis


@dataclass
class ChangeAnalysis:
    history: List[PolygonFeature] = field(default_factory=list)  # every dated outline, classified
    change: List[PolygonFeature] = field(default_factory=list)  # the latest date's outlines
    not_seen: List[PolygonFeature] = field(default_factory=list)
    growth: List[PolygonFeature] = field(default_factory=list)
    summary: List[Dict[str, Any]] = field(default_factory=list)


def analyse_change(by_date: Mapping[dt.date, List[Slump]], min_overlap: float = DEFAULT_MIN_OVERLAP,
                   progress: Optional[Progress] = None, min_retreat_m: float = DEFAULT_MIN_RETREAT_M) -> ChangeAnalysis:
    """Classify and measure every later inventory against the one before it."""
    progress = progress or Progress()
    dates = list(by_date)
    result = ChangeAnalysis()
    first = by_date[dates[0]]
    for slump in first:
        slump.slump_id = slump.slump_id or slump.uid
        result.history.append(PolygonFeature(slump.geometry, _baseline_record(slump)))
    result.summary.append(_summary_row(dates[0], None, first, [], 0, 0.0))
    for step, (before, after) in enumerate(zip(dates[:-1], dates[1:])):
        pair_progress = progress.sub(step / (len(dates) - 1), (step + 1) / (len(dates) - 1))
        earlier, later = by_date[before], by_date[after]
        records, unmatched = _compare_dates(earlier, later, (before, after), (min_overlap, min_retreat_m), result, pair_progress)
        if after == dates[-1]:
            result.change = [PolygonFeature(s.geometry, r) for s, r in zip(later, records)]
        result.not_seen.extend(PolygonFeature(earlier[e].geometry, _not_seen_record(earlier[e], after)) for e in unmatched)
        result.summary.append(_summary_row(after, _years(before, after), later, records, len(unmatched),
                                           sum(s.area_m2 for s in earlier)))
    return result


def _years(before: dt.date, after: dt.date) -> float:
    return (after - before).days / DAYS_PER_YEAR


def _compare_dates(earlier: List[Slump], later: List[Slump], dates: Tuple[dt.date, dt.date], rules: Tuple[float, float],
                   result: ChangeAnalysis, progress: Progress) -> Tuple[List[Dict[str, Any]], List[int]]:
    """Records of the later slumps (also added to the history and growth layers) and the
    indices of the earlier slumps not seen again. ``rules``: (min_overlap, min_retreat_m)."""
    (before, after), (min_overlap, min_retreat_m) = dates, rules
    matching = match_inventories([s.geometry for s in earlier], [s.geometry for s in later], min_overlap)
    inherit_slump_ids(earlier, later, matching)
    classes = classify_later(matching, len(later))
    unmatched = not_seen_again(matching, len(earlier))
    unmatched_set = set(unmatched)
    records = []
    for index, slump in enumerate(later):
        if index % 50 == 0:
            progress.check_cancelled()
            progress.report(index / max(len(later), 1), f"comparing {before} with {after}")
        parents = [earlier[e] for e in matching.earlier_of(index)]
        record = _change_record(slump, classes[index], parents, _years(before, after), before)
        record["growing"] = int(bool(parents) and record["retreat_max_m"] >= min_retreat_m)
        record.update(arts_relationships(index, classes[index], matching, earlier, unmatched_set))
        growth = record.pop("_growth", None)
        if parents:
            result.growth.append(PolygonFeature(growth, _growth_record(record, parents, before)))
        records.append(record)
        result.history.append(PolygonFeature(slump.geometry, record))
    progress.report(1.0, f"compared {before} with {after}")
    return records, unmatched


def _baseline_record(slump: Slump) -> Dict[str, Any]:
    return {"slump_id": slump.slump_id, "UID": slump.uid, "change_class": BASELINE, "date": slump.date.isoformat(),
            "area_m2": slump.area_m2, "perimeter_m": slump.perimeter_m, "n_earlier": 0, "shrank": 0, "source": slump.source,
            "source_index": slump.source_index}


def _change_record(slump: Slump, change_class: str, parents: Sequence[Slump], years: float, before: dt.date) -> Dict[str, Any]:
    record: Dict[str, Any] = {
        "slump_id": slump.slump_id, "UID": slump.uid, "change_class": change_class, "date": slump.date.isoformat(),
        "prev_date": before.isoformat(), "n_earlier": len(parents), "source": slump.source,
        "source_index": slump.source_index,
    }
    record.update(pair_measures(slump, parents, years))
    return record


def _growth_record(record: Mapping[str, Any], parents: Sequence[Slump], before: dt.date) -> Dict[str, Any]:
    return {
        "slump_id": record["slump_id"], "UID": record["UID"], "change_class": record["change_class"],
        "date_from": before.isoformat(), "date_to": record["date"], "years": record["years"],
        "growth_area_m2": record.get("growth_area_m2"), "retreat_max_m": record.get("retreat_max_m"),
        "retreat_max_m_per_yr": record.get("retreat_max_m_per_yr"),
        "growth_direction_deg": record.get("growth_direction_deg"), "earlier_UIDs": ",".join(p.uid for p in parents),
    }


def _not_seen_record(slump: Slump, missing_on: dt.date) -> Dict[str, Any]:
    return {"slump_id": slump.slump_id, "UID": slump.uid, "change_class": NOT_SEEN_AGAIN, "last_date": slump.date.isoformat(),
            "missing_on": missing_on.isoformat(), "area_m2": slump.area_m2, "perimeter_m": slump.perimeter_m, "source": slump.source,
            "source_index": slump.source_index}


def _summary_row(date: dt.date, years: Optional[float], slumps: Sequence[Slump], records: Sequence[Mapping[str, Any]],
                 n_not_seen: int, previous_total: float) -> Dict[str, Any]:
    total = float(sum(s.area_m2 for s in slumps))
    rates = [r["retreat_max_m_per_yr"] for r in records if r.get("growing")]
    row: Dict[str, Any] = {"date": date.isoformat(), "years_since_previous": years, "n_slumps": len(slumps), "total_area_m2": total}
    for name in CHANGE_CLASSES:
        row[f"n_{name}"] = sum(1 for r in records if r["change_class"] == name)
    row["n_not_seen_again"] = n_not_seen
    row["n_growing"] = len(rates)
    row["area_change_m2"] = total - previous_total if years is not None else None
    row["growth_area_m2"] = float(sum(r.get("growth_area_m2") or 0.0 for r in records)) if years is not None else None
    row["retreat_max_m_per_yr_median"] = float(np.median(rates)) if rates else None
    return row


# ---------------------------------------------------------------- output


def check_output(output: Path, overwrite: bool) -> None:
    """Before any work: the output must be a GeoPackage we may write, and must not hold one
    of our layers unless the user asked to overwrite."""
    if output.suffix.lower() != ".gpkg":
        raise UserError(f"The change output is a GeoPackage; give a name ending in .gpkg (not {output.name}).")
    if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
        raise UserError(f"Cannot write to {output.parent}; choose an existing folder you can write to.")
    if not output.exists():
        return
    existing = list_layers(output)
    if not existing:
        raise UserError(f"{output.name} exists and is not a GeoPackage; choose another output file.")
    taken = [name for name in OUTPUT_LAYERS if name in existing]
    if taken and not overwrite:
        raise UserError(
            f"{output.name} already holds layer(s) {', '.join(taken)}; choose another output file "
            "or ask to overwrite (--overwrite, OVERWRITE=1)."
        )


def write_outputs(output: Path, analysis: ChangeAnalysis, crs_wkt: str) -> Path:
    """Write every layer into a temporary GeoPackage beside the output (a copy of it when it
    exists, so its other layers survive), then move it into place in one step."""
    partial = output.with_name(f".{output.stem}.partial-{os.getpid()}.gpkg")
    try:
        if output.exists():
            shutil.copy2(output, partial)
        write_polygons(partial, LAYER_CHANGE, analysis.change, crs_wkt, CHANGE_SCHEMA, overwrite=True)
        write_polygons(partial, LAYER_NOT_SEEN, analysis.not_seen, crs_wkt, NOT_SEEN_SCHEMA, overwrite=True)
        write_polygons(partial, LAYER_GROWTH, analysis.growth, crs_wkt, GROWTH_SCHEMA, overwrite=True)
        write_polygons(partial, LAYER_HISTORY, analysis.history, crs_wkt, {**CHANGE_SCHEMA}, overwrite=True)
        write_table(partial, LAYER_SUMMARY, analysis.summary, SUMMARY_SCHEMA)
        os.replace(partial, output)
    finally:
        if partial.exists():
            partial.unlink()
    return output


def write_table(path: Path, layer: str, rows: Sequence[Mapping[str, Any]], schema: Mapping[str, str]) -> None:
    """A GeoPackage attribute table (no geometry)."""
    if layer in list_layers(path):
        fiona.remove(str(path), layer=layer, driver="GPKG")
    with fiona.open(str(path), "w", driver="GPKG", layer=layer, schema={"geometry": "None", "properties": dict(schema)}) as dst:
        dst.writerecords({"geometry": None, "properties": {k: row.get(k) for k in schema}} for row in rows)


@dataclass
class ChangeResult:
    output_path: Path
    dates: List[str]
    counts: Dict[str, int]  # classes and growing of the latest date, and not_seen_again over all dates
    summary: List[Dict[str, Any]]
    crs_name: str
    elapsed_s: float


def compare_inventories(
    inputs: Sequence["InventoryInput | str | Path"],
    output: "Path | str",
    dates: "str | Sequence[str] | None" = None,
    date_field: Optional[str] = None,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    overwrite: bool = False,
    progress: Optional[Progress] = None,
    min_retreat_m: float = DEFAULT_MIN_RETREAT_M,
) -> ChangeResult:
    """Compare dated slump layers and write the change GeoPackage (layers named in OUTPUT_LAYERS)."""
    started = time.perf_counter()
    progress = progress or Progress()
    output = Path(output)
    if not 0.0 < min_overlap <= 1.0:
        raise UserError(f"The minimum overlap is a share of the smaller slump, above 0 and at most 1 (not {min_overlap:g}).")
    if not min_retreat_m >= 0.0:
        raise UserError(f"The minimum retreat of a growing slump is a distance in metres, 0 or more (not {min_retreat_m:g}).")
    check_output(output, overwrite)
    inventories = [i if isinstance(i, InventoryInput) else InventoryInput.parse(i) for i in inputs]
    by_date, working = load_slumps(inventories, parse_dates_list(dates), date_field)
    progress.report(0.2, "loaded")
    analysis = analyse_change(by_date, min_overlap, progress.sub(0.2, 0.9), min_retreat_m)
    progress.check_cancelled()
    write_outputs(output, analysis, working.to_wkt())
    progress.report(1.0, "done")
    counts = {name: sum(1 for f in analysis.change if f.properties["change_class"] == name) for name in CHANGE_CLASSES}
    counts[NOT_SEEN_AGAIN] = len(analysis.not_seen)
    counts["growing"] = sum(1 for f in analysis.change if f.properties.get("growing"))
    return ChangeResult(output, [d.isoformat() for d in by_date], counts, analysis.summary,
                        working.to_string() if working.to_epsg() is None else f"EPSG:{working.to_epsg()}",
                        time.perf_counter() - started)
