"""Where a training step's time goes: the default fine-tune's main phase under torch.profiler.

Builds the default recipe's network (ImageNet start, the bundled architecture, the default
precision and frozen stages) on the real Arctic chips, pre-builds the batches (so the step
alone is timed, not the batch pipeline), times a few steps, then profiles a few more and prints
the operators by self time, grouped by input shape. `--plain-depthwise` turns the depthwise
convolutions' fast backward (model/fast_depthwise.py) off, for the comparison in one process.

  .venv/bin/python tools/profile_train_step.py --chips out/arctic_chips --crop 192 [--plain-depthwise]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=Path, default=Path("out/arctic_chips"), help="a chip folder (make chips)")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rows", type=int, default=30, help="operators to list")
    parser.add_argument("--plain-depthwise", action="store_true", help="PyTorch's own depthwise backward")
    args = parser.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    from thaw_slump_mapper.model.fast_depthwise import FAST_BACKWARD_ATTRIBUTE
    from thaw_slump_mapper.model.losses import loss_function
    from thaw_slump_mapper.model.precision import choose_precision
    from thaw_slump_mapper.model.training import fine_tune_settings
    from thaw_slump_mapper.model.training_start import imagenet_checkpoint, load_training_chips
    from thaw_slump_mapper.model.training_steps import batch_maker, train_mode, train_step, training_network

    torch.set_num_threads(min(2, torch.get_num_threads()))
    settings = replace(fine_tune_settings(), crop_size=args.crop)
    base = imagenet_checkpoint()
    chips = load_training_chips([args.chips], base)
    precision = choose_precision("cpu", settings.precision)
    net = training_network(base, replace(settings, fast_depthwise_backward=not args.plain_depthwise), precision)
    routed = sum(bool(getattr(m, FAST_BACKWARD_ATTRIBUTE, False)) for m in net.modules())
    optimiser = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    train_mode(net)
    make_batch = batch_maker(chips, 3.0, base.scaling, settings, np.random.default_rng(0))
    loss_fn = loss_function(settings.loss, settings.positive_weight)
    batches = [make_batch() for _ in range(2 + 2 * args.steps)]

    def steps(chosen) -> float:
        started = time.perf_counter()
        for x, y in chosen:
            train_step(net, optimiser, None, precision, loss_fn, x, y, "cpu")
        return (time.perf_counter() - started) / len(chosen)

    steps(batches[:2])  # oneDNN picks its kernels on first use
    seconds = steps(batches[2:2 + args.steps])
    print(f"{precision.name}, crop {args.crop}, batch {settings.batch_size}, {settings.frozen_stages} stages fixed, "
          f"{routed} depthwise layers on the fast backward: {seconds:.3f} s a step (mean of {args.steps})")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        steps(batches[2 + args.steps:])
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.rows,
                                                             max_name_column_width=34, max_shapes_column_width=80))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
