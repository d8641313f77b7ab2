"""Slumps through time, with the truth known: real Banks Island outlines grown by known headwall
retreats, merged, split, dropped and added (tests/change_helpers.py). `make change` must recover
every class exactly and every retreat within one 3 m pixel."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import fiona
import pytest
import shapely

from thaw_slump_mapper.analysis.change import OUTPUT_LAYERS, compare_inventories, headwall_retreat, parse_date
from thaw_slump_mapper.analysis.label_export import uid_for
from thaw_slump_mapper.cli import main as cli_main
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.engine.vector_io import PolygonFeature, read_polygons, write_polygons

from ..change_helpers import EARLIER_DATE, LATER_DATE, YEARS, build_truth, sweep, write_truth

REPO = Path(__file__).resolve().parents[2]
PIXEL_M = 3.0  # PlanetScope, the paper's imagery
DIRECTION_TOLERANCE_DEG = 10.0
DATES = f"{EARLIER_DATE},{LATER_DATE}"


@pytest.fixture(scope="module")
def truth(shared_data):
    return build_truth(shared_data)


@pytest.fixture(scope="module")
def layers(truth, tmp_path_factory):
    return write_truth(truth, tmp_path_factory.mktemp("change_inputs"))


@pytest.fixture(scope="module")
def small_layers(truth, tmp_path_factory):
    """The first 40 outlines of each date: enough for the tests of rules that need no truth."""
    folder = tmp_path_factory.mktemp("change_small")
    paths = []
    for name, geometries in (("earlier", truth.earlier[:40]), ("later", truth.later[:40])):
        paths.append(folder / f"{name}.gpkg")
        write_polygons(paths[-1], "slumps", [PolygonFeature(g, {"name": str(i)}) for i, g in enumerate(geometries)],
                       truth.crs_wkt, {"name": "str:40"})
    return paths


@pytest.fixture(scope="module")
def made(layers, tmp_path_factory):
    """`make change` exactly as outside checks call it."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    output = tmp_path_factory.mktemp("change_make") / "change.gpkg"
    ran = subprocess.run(
        ["make", "-s", "-C", str(REPO), "change", f"INPUTS={layers[0]} {layers[1]}", f"DATES={DATES}", f"OUTPUT={output}"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "latest date: repeat" in ran.stdout
    return output


def _rows(path: Path, layer: str) -> list:
    with fiona.open(str(path), layer=layer) as src:
        return [(dict(f.properties), f.geometry) for f in src]


def _by_name(truth, path: Path) -> dict:
    return {truth.later_names[p["source_index"]]: (p, g) for p, g in _rows(path, "change")}


def _growing(truth) -> set:
    """The slumps whose headwall moved out: the grown ones and the merge (its bridge reaches
    beyond both old outlines), not the unchanged, shrunk, split or new ones."""
    moved = {name for name, (d, _) in truth.expected_retreat.items() if d > 0}
    return moved | {name for name, c in truth.expected_class.items() if c == "merged"}


def _angle_between(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_make_change_recovers_every_class(truth, made):
    assert set(OUTPUT_LAYERS) <= set(fiona.listlayers(str(made)))
    rows = _by_name(truth, made)
    assert len(rows) == len(truth.later)
    wrong = {name: (p["change_class"], truth.expected_class[name]) for name, (p, _) in rows.items()
             if p["change_class"] != truth.expected_class[name]}
    assert not wrong, wrong
    # every class occurs, so none can pass by being absent
    assert {"repeat", "new", "merged", "split"} == {p["change_class"] for p, _ in rows.values()}
    not_seen = sorted(p["source_index"] for p, _ in _rows(made, "not_seen_again"))
    assert not_seen == sorted(truth.not_seen)
    assert all(p["last_date"] == EARLIER_DATE and p["missing_on"] == LATER_DATE for p, _ in _rows(made, "not_seen_again"))


def test_retreat_within_one_pixel_and_direction(truth, made):
    rows = _by_name(truth, made)
    assert len([d for d, _ in truth.expected_retreat.values() if d > 0]) >= 6
    for name, (distance, direction) in truth.expected_retreat.items():
        p = rows[name][0]
        assert abs(p["retreat_max_m"] - distance) <= PIXEL_M, (name, p["retreat_max_m"], distance)
        assert p["retreat_max_m_per_yr"] == pytest.approx(p["retreat_max_m"] / YEARS)
        assert p["years"] == pytest.approx(YEARS)
        if distance > 0:
            assert 0 < p["retreat_mean_m"] <= p["retreat_max_m"] + 1e-9
            assert _angle_between(p["growth_direction_deg"], direction) <= DIRECTION_TOLERANCE_DEG, (name, p["growth_direction_deg"], direction)
            assert p["shrank"] == 0 and p["area_change_m2"] > 0 and p["growing"] == 1
    assert {name for name, (p, _) in rows.items() if p["growing"]} == _growing(truth)


def test_shrunk_slump_is_a_repeat_that_did_not_retreat(truth, made):
    shrunk = [name for name, (d, _) in truth.expected_retreat.items() if d == 0]
    assert len(shrunk) == 1
    p = _by_name(truth, made)[shrunk[0]][0]
    assert p["change_class"] == "repeat" and p["shrank"] == 1
    assert p["area_change_m2"] < 0 and p["area_change_pct"] < 0
    assert p["retreat_max_m"] == 0.0 and p["growth_direction_deg"] is None


def test_area_change_matches_an_independent_computation(truth, made):
    for name, (p, geometry) in _by_name(truth, made).items():
        later = truth.later[truth.later_names.index(name)]
        expected = later.area - truth.earlier_area[name]
        assert p["area_change_m2"] == pytest.approx(expected, abs=0.01), name
        assert p["area_m2"] == pytest.approx(shapely.geometry.shape(geometry).area, rel=1e-9)
        if truth.expected_class[name] != "new":
            assert p["area_change_pct"] == pytest.approx(100 * expected / truth.earlier_area[name], abs=1e-6)
            assert p["perimeter_change_m"] is not None


def test_stable_ids_and_arts_relationships(truth, layers, made):
    earlier_uids = [uid_for(f.geometry) for f in read_polygons(layers[0]).features]
    rows = _by_name(truth, made)
    for name, (p, _) in rows.items():
        cls = truth.expected_class[name]
        if cls == "repeat":
            assert p["RepeatRTS"] in earlier_uids and p["slump_id"] == p["RepeatRTS"]
        if cls == "new":
            assert p["slump_id"] == p["UID"] and p["NewRTS"] is None and p["RepeatRTS"] is None
        if cls == "merged":
            parents = p["MergedRTS"].split(",")
            assert len(parents) == 2 and set(parents) <= set(earlier_uids) and p["slump_id"] in parents
    split = [p for name, (p, _) in rows.items() if truth.expected_class[name] == "split"]
    assert len({p["SplitRTS"] for p in split}) == 1 and split[0]["SplitRTS"] in earlier_uids
    # the parent's id passes to one piece only; the other piece starts its own
    assert sorted(p["slump_id"] == p["SplitRTS"] for p in split) == [False, True]
    ids = [p["slump_id"] for p, _ in rows.values()]
    assert len(ids) == len(set(ids))
    # touching neighbours: two repeats, and each names the other as a contact, not a match
    first, second = (rows[n][0] for n in truth.touching)
    assert first["change_class"] == second["change_class"] == "repeat"
    assert second["RepeatRTS"] in (first["UnknownRelationship"] or "")


def test_growth_areas_and_summary(truth, made):
    growth = _rows(made, "growth_areas")
    matched = [n for n in truth.later_names if truth.expected_class[n] != "new"]
    assert len(growth) == len(matched)
    rows = _by_name(truth, made)
    for p, geometry in growth:
        later = next(q for q, _ in rows.values() if q["UID"] == p["UID"])
        if later["change_class"] == "repeat" and later["area_change_m2"] > 0:
            # pure growth contains the old outline, so the growth area is the area change
            assert p["growth_area_m2"] == pytest.approx(later["area_change_m2"], rel=1e-6)
            assert shapely.geometry.shape(geometry).area == pytest.approx(p["growth_area_m2"], rel=1e-6)
    summary = [p for p, _ in _rows(made, "change_summary")]
    assert [s["date"] for s in summary] == [EARLIER_DATE, LATER_DATE]
    last = summary[1]
    counts = {c: sum(1 for n in truth.later_names if truth.expected_class[n] == c) for c in ("repeat", "new", "merged", "split")}
    assert {c: last[f"n_{c}"] for c in counts} == counts and last["n_not_seen_again"] == len(truth.not_seen)
    assert last["n_growing"] == len(_growing(truth))
    assert last["retreat_max_m_per_yr_median"] > 0  # over the growing slumps, not the unchanged ones
    assert last["total_area_m2"] == pytest.approx(sum(g.area for g in truth.later), rel=1e-9)
    assert last["area_change_m2"] == pytest.approx(sum(g.area for g in truth.later) - sum(g.area for g in truth.earlier), rel=1e-9)


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_layers_in_different_crss(truth, tmp_path):
    """The later layer in geographic coordinates: the same classes, retreat still within a pixel."""
    earlier, later = write_truth(truth, tmp_path, later_crs_wkt="EPSG:4326")
    output = tmp_path / "change.gpkg"
    result = compare_inventories([earlier, later], output, dates=DATES)
    assert result.crs_name == "EPSG:32610"
    rows = _by_name(truth, output)
    assert {n: p["change_class"] for n, (p, _) in rows.items()} == truth.expected_class
    for name, (distance, _) in truth.expected_retreat.items():
        assert abs(rows[name][0]["retreat_max_m"] - distance) <= PIXEL_M, name


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_date_field_and_three_dates_keep_ids(truth, tmp_path):
    """One layer holding three inventories in a date field; the third repeats the second."""
    earlier, later = truth.earlier[:60], truth.later[:60]
    features = [PolygonFeature(g, {"date": EARLIER_DATE}) for g in earlier]
    features += [PolygonFeature(g, {"date": LATER_DATE}) for g in later]
    features += [PolygonFeature(g, {"date": "2023"}) for g in later]
    path = tmp_path / "all_dates.gpkg"
    write_polygons(path, "slumps", features, truth.crs_wkt, {"date": "str:10"})
    output = tmp_path / "change.gpkg"
    result = compare_inventories([path], output)
    assert result.dates == [EARLIER_DATE, LATER_DATE, "2023-07-01"]
    assert result.counts["repeat"] == len(later)
    history = [p for p, _ in _rows(output, "change_history")]
    ids_second = sorted(p["slump_id"] for p in history if p["date"] == LATER_DATE)
    ids_third = sorted(p["slump_id"] for p in history if p["date"] == "2023-07-01")
    assert ids_second == ids_third and len(set(ids_second)) == len(later)
    assert {p["change_class"] for p in history if p["date"] == EARLIER_DATE} == {"baseline"}
    summary = [p for p, _ in _rows(output, "change_summary")]
    assert [s["n_slumps"] for s in summary] == [len(earlier), len(later), len(later)]


def test_missing_dates_is_one_clear_line(layers, tmp_path, capsys):
    code = cli_main(["change", str(layers[0]), str(layers[1]), "-o", str(tmp_path / "c.gpkg")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    message = [line for line in err if line.startswith("error:")]
    assert len(message) == 1 and "has no date" in message[0] and "DATES=" in message[0]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "c.gpkg").exists()
    with pytest.raises(UserError, match="one date per layer"):
        compare_inventories(layers, tmp_path / "c.gpkg", dates=EARLIER_DATE)
    with pytest.raises(UserError, match="Cannot read the date"):
        compare_inventories(layers, tmp_path / "c.gpkg", dates="2019-07-15,July 2021")


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_output_is_checked_first_and_never_replaced_silently(small_layers, tmp_path, capsys):
    layers = small_layers
    output = tmp_path / "mine.gpkg"
    write_polygons(output, "my_corrections", [PolygonFeature(shapely.box(0, 0, 10, 10), {"n": 1})], "EPSG:32610", {"n": "int"})
    assert cli_main(["change", str(layers[0]), str(layers[1]), "-o", str(output), "--dates", DATES]) == 0
    assert {"my_corrections", *OUTPUT_LAYERS} <= set(fiona.listlayers(str(output)))
    before = output.read_bytes()
    capsys.readouterr()
    assert cli_main(["change", str(layers[0]), str(layers[1]), "-o", str(output), "--dates", DATES]) == 2
    assert "already holds layer(s) change" in capsys.readouterr().err
    assert output.read_bytes() == before
    assert cli_main(["change", str(layers[0]), str(layers[1]), "-o", str(output), "--dates", DATES, "--overwrite"]) == 0
    assert "my_corrections" in fiona.listlayers(str(output))
    assert not list(tmp_path.glob(".*partial*"))


def test_multipolygon_retreat_is_the_farthest_part():
    parts = shapely.MultiPolygon([shapely.box(0, 0, 50, 50), shapely.box(200, 0, 260, 40)])
    grown = sweep(parts, 17.0, 90.0)
    assert grown.geom_type == "MultiPolygon"
    retreat_max, retreat_mean, direction = headwall_retreat(grown, parts)
    assert retreat_max == pytest.approx(17.0) and direction == pytest.approx(90.0)
    # a straight front that moved 17 m: the mean over the outward boundary is below the max
    assert 0 < retreat_mean < 17.0


@pytest.mark.parametrize("text, expected", [
    ("2021-07-20", "2021-07-20"), ("20210720", "2021-07-20"), ("2021", "2021-07-01"),
    ("2020-07-05,2020-08-20", "2020-07-28"), ("2021-07-20T10:30:00Z", "2021-07-20"), ("2021/7/2 10:30", "2021-07-02"),
    ("2021-13-01", None), ("", None), ("July", None),
])
def test_dates_are_read_as_documented(text, expected):
    parsed = parse_date(text)
    assert (parsed.isoformat() if parsed else None) == expected


def test_change_report_has_the_change_section(made, tmp_path):
    from thaw_slump_mapper.analysis.change_report import write_change_report

    page = write_change_report(made, tmp_path / "change.html").read_text(encoding="utf-8")
    assert "Change through time" in page and "Thaw slump morphometry" in page
    for caption in ("Slumps by class per date", "Slump area through time", "Headwall retreat rates", "Growth areas"):
        assert f"<figcaption>{caption}" in page
    assert page.count("data:image/png;base64,") >= 4 + 8


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_an_empty_later_layer_means_every_slump_is_not_seen_again(truth, layers, tmp_path):
    empty = tmp_path / "empty.gpkg"
    write_polygons(empty, "slumps", [], truth.crs_wkt, {"name": "str:40"})
    result = compare_inventories([layers[0], empty], tmp_path / "c.gpkg", dates=DATES)
    assert result.counts == {"repeat": 0, "new": 0, "merged": 0, "split": 0, "growing": 0, "not_seen_again": len(truth.earlier)}
    with pytest.raises(UserError, match="None of the layers holds a polygon"):
        compare_inventories([empty, empty], tmp_path / "d.gpkg", dates=DATES)
