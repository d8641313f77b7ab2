"""Shape fields against hand-computed cases and shapely."""
from __future__ import annotations

import math

import pytest
import shapely
from shapely.geometry import Polygon, box

from thaw_slump_mapper.analysis.shape_metrics import shape_metrics

NORTH_CELL_M2 = 621_587.24  # pyproj.Geod(ellps="WGS84").geometry_area_perimeter, computed once


def test_square_100_m():
    m = shape_metrics(box(0, 0, 100, 100), "EPSG:32645")
    assert m["area_m2"] == pytest.approx(10_000)
    assert m["area_ha"] == pytest.approx(1.0)
    assert m["perimeter_m"] == pytest.approx(400)
    assert m["circularity"] == pytest.approx(math.pi / 4)
    assert m["length_m"] == pytest.approx(100) and m["width_m"] == pytest.approx(100)
    assert m["elongation"] == pytest.approx(1.0)
    assert m["solidity"] == pytest.approx(1.0)
    assert m["n_holes"] == 0


def test_circle_is_nearly_perfectly_circular():
    circle = shapely.Point(0, 0).buffer(100, 256)
    m = shape_metrics(circle, "EPSG:32645")
    assert m["area_m2"] == pytest.approx(math.pi * 100**2, rel=1e-3)
    assert m["circularity"] == pytest.approx(1.0, abs=1e-3)
    assert m["length_m"] == pytest.approx(200, rel=1e-3)


def test_rectangle_orientation_and_elongation():
    rect = shapely.affinity.rotate(box(-200, -50, 200, 50), 30, origin=(0, 0))  # long axis 30 deg anticlockwise from east
    m = shape_metrics(rect, "EPSG:32645")
    assert m["length_m"] == pytest.approx(400) and m["width_m"] == pytest.approx(100)
    assert m["elongation"] == pytest.approx(4.0)
    assert m["orientation_deg"] == pytest.approx(60.0)  # azimuth clockwise from north


def test_polygon_with_hole():
    ring = Polygon(box(0, 0, 100, 100).exterior.coords, [box(25, 25, 75, 75).exterior.coords])
    m = shape_metrics(ring, "EPSG:32645")
    assert m["area_m2"] == pytest.approx(10_000 - 2_500)
    assert m["perimeter_m"] == pytest.approx(400 + 200)  # holes count in the perimeter
    assert m["n_holes"] == 1
    assert m["solidity"] == pytest.approx(0.75)


def test_l_shape_solidity_against_shapely():
    l_shape = Polygon([(0, 0), (100, 0), (100, 20), (20, 20), (20, 100), (0, 100)])
    m = shape_metrics(l_shape, "EPSG:32645")
    assert m["solidity"] == pytest.approx(l_shape.area / l_shape.convex_hull.area)
    assert m["area_m2"] == pytest.approx(l_shape.area)


def test_geographic_polygon_area_is_geodesic():
    # a 0.01 x 0.01 degree cell at the equator: 1113.2 m x 1105.7 m on WGS84 = 1.2308e6 m2
    cell = box(0.0, 0.0, 0.01, 0.01)
    m = shape_metrics(cell, "EPSG:4326")
    assert m["area_m2"] == pytest.approx(1_230_860, rel=2e-3)
    # the same cell at 60 N (NORTH_CELL_M2, Karney geodesic area on WGS84) is
    # about half the equator's (cos 60) and a little more (degrees of latitude lengthen polewards)
    north = shape_metrics(box(0.0, 60.0, 0.01, 60.01), "EPSG:4326")
    assert north["area_m2"] == pytest.approx(NORTH_CELL_M2, rel=1e-3)
