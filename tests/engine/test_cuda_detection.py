"""Detection on a CUDA GPU (torch, float16 autocast) against the CPU's fp32 graph, on the real
ARTS chips: the probability, the threshold decisions and the polygons.

Tolerances, and why. float16 keeps 11 significant bits, so each layer's relative error is
about 5e-4, a tenth of int8's; over the ~60 convolutions that stays well under a hundredth of
probability in the bulk. The probability raster is stored in whole percent, so the test
bounds the mean |p_cuda - p_cpu| at 0.01 (one stored step), the flipped threshold decisions at
0.5 % of the valid pixels, and asks that the polygons match the CPU's one to one (F1 >= 0.95).
Runs only where torch sees a CUDA GPU: CI machines have none, the GPU machines of the
project's device tool do (its figures are in BENCHMARKS.md)."""
from __future__ import annotations

import pytest

from thaw_slump_mapper.analysis.evaluation import one_to_one_scores
from thaw_slump_mapper.core.devices import cuda_name

from ..conftest import missing
from ..engine_helpers import detect_on_chips, probability_agreement

pytestmark = pytest.mark.skipif(cuda_name() is None, reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")


@pytest.fixture(scope="module")
def cpu_and_cuda(chip_paths, tmp_path_factory):
    if not chip_paths:
        missing("the ARTS chips under ../shared/data/arctic_rts_chips/chips are missing")
    work = tmp_path_factory.mktemp("cuda")
    runs = {}
    for device in ("cpu", "cuda"):
        probabilities, polygons, results = detect_on_chips(chip_paths, work, device, device=device, precision="fp32")
        runs[device] = (probabilities, polygons, {r.device_name for r in results})
    return runs


def test_cuda_runs_on_the_gpu(cpu_and_cuda):
    assert all(name.startswith("CUDA: ") for name in cpu_and_cuda["cuda"][2])
    assert not any(name.startswith("CUDA") for name in cpu_and_cuda["cpu"][2])


def test_cuda_probability_matches_the_cpu(cpu_and_cuda):
    diff, flipped = probability_agreement(cpu_and_cuda["cpu"][0], cpu_and_cuda["cuda"][0])
    print(f"CUDA fp16 vs CPU fp32 on {len(cpu_and_cuda['cpu'][0])} chips: mean |dp| {diff.mean():.4f}, max {diff.max():.2f}, "
          f"decision flips {flipped:.4f}")
    assert diff.mean() <= 0.01
    assert flipped <= 0.005


def test_cuda_polygons_match_the_cpu(cpu_and_cuda):
    cpu_polygons, cuda_polygons = cpu_and_cuda["cpu"][1], cpu_and_cuda["cuda"][1]
    assert cpu_polygons, "the bundled model finds slumps on these chips on the CPU"
    agreement = one_to_one_scores(cuda_polygons, cpu_polygons)
    print(f"CUDA against CPU polygons: F1 {agreement.f1:.3f} ({len(cuda_polygons)} vs {len(cpu_polygons)})")
    assert agreement.f1 >= 0.95
