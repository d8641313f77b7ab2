"""Every bad input gets one clear line: checkpoint validation and the detect command line."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

from thaw_slump_mapper.core.checkpoint import load_checkpoint
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.engine.bands import resolve_bands

from ..engine_helpers import write_raster


def _payload(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: p.pop("input"), "missing key 'input'"),
        (lambda p: p.update(format="something-else"), "format is"),
        (lambda p: p.update(format_version=99), "format version 99"),
        (lambda p: p["architecture"].update({"class": "os.system"}), "architecture class"),
        (lambda p: p["input"].update(bands=["red", "green"]), "3 channels but 2 bands"),
        (lambda p: p["input"].update(gsd_m=0), "gsd_m must be a positive"),
        (lambda p: p["input"]["scaling"].update(method="magic"), "scaling.method"),
        (lambda p: p["inference"].update(threshold=1.5), "threshold must lie"),
        (lambda p: p["inference"].pop("tile_size"), "inference.tile_size"),
        (lambda p: p["state_dict"].pop(next(iter(p["state_dict"]))), "weights do not fit"),
    ],
)
def test_checkpoint_validation_errors(tiny_checkpoint, tmp_path, corrupt, message):
    payload = _payload(tiny_checkpoint)
    corrupt(payload)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(UserError, match=message) as err:
        ckpt = load_checkpoint(bad)
        from thaw_slump_mapper.core.checkpoint import build_network

        build_network(ckpt)
    assert "\n" not in str(err.value)


def test_corrupt_and_missing_checkpoint_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(UserError, match="not a readable thaw slump checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UserError, match="no description inside"):
        load_checkpoint(tmp_path / "list.pt")


def test_band_mapping_defaults_and_errors():
    rgb = ["red", "green", "blue"]
    assert resolve_bands(rgb, 3) == [1, 2, 3]
    assert resolve_bands(rgb, 4) == [3, 2, 1]  # PlanetScope analytic B, G, R, NIR
    assert resolve_bands(rgb, 4, ["blue", "green", "red", "undefined"]) == [3, 2, 1]
    assert resolve_bands(rgb, 5, explicit=[5, 4, 3]) == [5, 4, 3]
    with pytest.raises(UserError, match="has 1 band"):
        resolve_bands(rgb, 1)
    with pytest.raises(UserError, match="pass the band numbers explicitly"):
        resolve_bands(rgb, 6)
    with pytest.raises(UserError, match="Band 7 does not exist"):
        resolve_bands(rgb, 4, explicit=[7, 2, 1])


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The command line in-process (same code as `python -m thaw_slump_mapper`, minus the
    interpreter start-up); an unexpected exception would propagate and fail the test."""
    import contextlib
    import io

    from thaw_slump_mapper.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_cli_subprocess_bad_input_has_no_traceback(tmp_path):
    bad = tmp_path / "x.tif"
    bad.write_text("not a raster")
    result = subprocess.run([sys.executable, "-m", "thaw_slump_mapper", "detect", str(bad), str(tmp_path / "o.gpkg")],
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: x.tif is not a raster")


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, chip_paths):
    d = tmp_path_factory.mktemp("bad")
    text = d / "notes.tif"
    text.write_text("this is not a raster")
    nocrs = write_raster(d / "nocrs.tif", np.ones((3, 64, 64), np.uint8), Affine(3, 0, 0, 0, -3, 0), crs=None)
    oneband = write_raster(d / "gray.tif", np.ones((1, 64, 64), np.uint8), Affine(3, 0, 0, 0, -3, 0), "EPSG:32633")
    unreadable = d / "locked.tif"
    unreadable.write_bytes(b"II*\x00" + b"\x00" * 100)
    readonly = d / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    return {"text": text, "nocrs": nocrs, "oneband": oneband, "unreadable": unreadable, "readonly": readonly, "chip": chip_paths[0], "dir": d}


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("text", [], "not a raster GDAL can read"),
        ("nocrs", [], "no coordinate reference system"),
        ("oneband", [], "has 1 band"),
        ("unreadable", [], "not a raster GDAL can read"),
        ("chip", ["--bands", "1,2,3", "--extent", "0,0,10,10"], "does not overlap"),
        ("chip", ["--bands", "1,2,3", "--unwritable"], "Cannot write"),
        ("chip", ["--bands", "1,2"], "takes 3 bands"),
        ("chip", ["--bands", "1,2,3", "--missing-dir"], "does not exist"),
    ],
)
def test_detect_cli_bad_input_is_one_line_and_nonzero(bad_inputs, tiny_checkpoint, case, extra, message):
    out = bad_inputs["dir"] / f"{case}_{len(extra)}.gpkg"
    if "--unwritable" in extra:
        extra = [e for e in extra if e != "--unwritable"]
        out = bad_inputs["readonly"] / "out.gpkg"
        import os

        if os.geteuid() == 0:
            # root ignores permissions; a path under a regular file is unwritable for anyone
            out = bad_inputs["text"] / "out.gpkg"
            message = "does not exist"
    if "--missing-dir" in extra:
        extra = [e for e in extra if e != "--missing-dir"]
        out = bad_inputs["dir"] / "no" / "such" / "out.gpkg"
    result = _cli("detect", str(bad_inputs[case]), str(out), "--checkpoint", str(tiny_checkpoint), *extra)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_detect_cli_writes_all_fields(tiny_checkpoint, chip_paths, tmp_path):
    out = tmp_path / "ok.gpkg"
    result = _cli("detect", str(chip_paths[0]), str(out), "--checkpoint", str(tiny_checkpoint), "--bands", "1,2,3", "--threshold", "0.01")
    assert result.returncode == 0, result.stderr
    assert "UNTRAINED" in result.stderr and out.exists() and (tmp_path / "ok_probability.tif").exists()
