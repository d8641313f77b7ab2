"""`train` on the command line: the precision and GSD flags reach the run, and impossible values are one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from thaw_slump_mapper.cli import main
from thaw_slump_mapper.core.checkpoint import load_checkpoint
from thaw_slump_mapper.tests.checkpoints import make_tiny_checkpoint
from thaw_slump_mapper.tests.training_helpers import make_chip_folder


@pytest.fixture(scope="module")
def chips_and_base(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("train_cli")
    return make_chip_folder(root / "chips"), make_tiny_checkpoint(root / "tiny.pt", gsd_m=2.0, tile_size=64, overlap=16)


def test_precision_flag_is_used_and_recorded(tmp_path: Path, chips_and_base: tuple) -> None:
    chips, base = chips_and_base
    out = tmp_path / "bf16.pt"
    assert main(["train", str(chips), "--output", str(out), "--base", str(base), "--epochs", "1", "--precision", "bf16"]) == 0
    assert load_checkpoint(out).provenance["recipe"]["precision_used"] == "bf16"


def test_fp16_on_the_cpu_is_a_one_line_refusal(tmp_path: Path, chips_and_base: tuple, capsys) -> None:
    chips, base = chips_and_base
    out = tmp_path / "fp16.pt"
    code = main(["train", str(chips), "--output", str(out), "--base", str(base), "--device", "cpu", "--precision", "fp16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert any("fp16 training runs on CUDA only" in line for line in err) and "Traceback" not in "\n".join(err)


def test_gsd_flag_sets_the_working_gsd(tmp_path: Path, chips_and_base: tuple) -> None:
    chips, base = chips_and_base  # chips at 2 m
    out = tmp_path / "at3m.pt"
    assert main(["train", str(chips), "--output", str(out), "--base", str(base), "--epochs", "1", "--gsd", "3"]) == 0
    assert load_checkpoint(out).gsd_m == 3.0


@pytest.mark.parametrize("gsd, message", [("0", "must be above 0 m"), ("0.1", "more than 10x the chips' 2 m")])
def test_an_impossible_gsd_is_a_one_line_refusal(tmp_path: Path, chips_and_base: tuple, capsys, gsd: str, message: str) -> None:
    chips, base = chips_and_base
    out = tmp_path / "bad.pt"
    code = main(["train", str(chips), "--output", str(out), "--base", str(base), "--epochs", "1", "--gsd", gsd])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert message in err and "Traceback" not in err
