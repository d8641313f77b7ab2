"""The moving average of the weights: its arithmetic, and that a run with it validates and keeps
the averaged weights while the live network trains on unchanged."""
from __future__ import annotations

import pytest
import torch

from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
from thaw_slump_mapper.model.training import fine_tune_settings
from thaw_slump_mapper.model.weight_averaging import WeightAverage, step_decay


def _tiny_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_span_one_is_the_plain_mean_of_every_step():
    net = _tiny_net()
    with torch.no_grad():
        net[0].weight.fill_(0.0)
    average = WeightAverage(net, span=1.0)
    for step, value in enumerate([1.0, 2.0, 4.0, 8.0, 16.0], start=1):
        with torch.no_grad():
            net[0].weight.fill_(value)
            net[1].num_batches_tracked.fill_(step)
        average.update(net)
    assert torch.allclose(average.state["0.weight"], torch.full((2, 3), 31.0 / 6.0))  # the start and five steps
    assert int(average.state["1.num_batches_tracked"]) == 5  # counters follow the live network
    assert torch.equal(net[0].weight, torch.full((2, 3), 16.0))  # the live weights are not touched


def test_a_shorter_span_follows_the_recent_steps():
    net = _tiny_net()
    short, long = WeightAverage(net, span=0.1), WeightAverage(net, span=0.5)
    expected = net[0].weight.detach().clone()
    for step in range(1, 201):
        with torch.no_grad():
            net[0].weight.fill_(float(step))
        short.update(net)
        long.update(net)
        decay = step_decay(0.1, step)
        expected = decay * expected + (1.0 - decay) * step
    assert torch.allclose(short.state["0.weight"], expected)
    # a weight that grows by 1 a step: the averaged weights are span / (1 + span) of the run old on average
    assert 200 - short.state["0.weight"].mean().item() == pytest.approx(0.1 / 1.1 * 200, rel=0.05)
    assert 200 - long.state["0.weight"].mean().item() == pytest.approx(0.5 / 1.5 * 200, rel=0.05)
    assert step_decay(1.0 / 9.0, 90) == pytest.approx((1 + 90) / (10 + 90), rel=0.01)  # TensorFlow's warm-up
    with pytest.raises(ValueError):
        WeightAverage(_tiny_net(), span=0.0)


def test_swapped_in_lends_the_average_and_gives_the_live_weights_back():
    net = _tiny_net()
    average = WeightAverage(net, span=0.5)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    live = net[0].weight.detach().clone()
    with average.swapped_in(net):
        assert torch.equal(net[0].weight, average.state["0.weight"])
    assert torch.equal(net[0].weight, live)


def test_a_run_keeps_its_averaged_weights(arctic_chips):
    """On real chips: the checkpoint a run with ``weight_average_span`` returns is the average
    that an observer with the same span computed, not the live network's last weights."""
    from thaw_slump_mapper.model.training import fit

    ckpt = load_checkpoint(bundled_checkpoint_path())

    class Watch:
        """The same average, started from the checkpoint's weights as the run's is."""

        def __init__(self) -> None:
            self.average = None
            self.live = None

        def __call__(self, net) -> None:
            if self.average is None:
                self.average = WeightAverage(net, 0.8)
                self.average.state = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                                      for k, v in ckpt.state_dict.items()}
            self.average.update(net)
            self.live = {k: v.detach().clone() for k, v in net.state_dict().items()}

    watch = Watch()
    settings = fine_tune_settings(crop_size=64, batch_size=2, max_minutes=None, max_steps=4, steps_per_epoch=4, epochs=1,
                                  calibrate=False, weight_average_span=0.8, precision="fp32")
    outcome = fit(ckpt, arctic_chips[:12], arctic_chips[12:14], settings, 3.0, step_observers=[watch])
    assert outcome.steps == 4 and watch.average.updates == 4
    key = next(k for k in watch.live if k.startswith("decoder.") and k.endswith("weight"))
    kept = outcome.checkpoint.state_dict[key]
    assert torch.allclose(kept, watch.average.state[key].contiguous(), atol=1e-6)
    assert not torch.allclose(kept, watch.live[key].contiguous(), atol=1e-6)
    assert "val_pixel_iou" in outcome.best_metrics
