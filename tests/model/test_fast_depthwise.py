"""The depthwise convolutions' faster backward (model/fast_depthwise.py): the same gradients
as PyTorch's own kernels on the real network and on every geometry it takes (dilated, strided,
5 x 5, taps in the padding), and nothing else changed."""
from __future__ import annotations

import numpy as np
import torch

from thaw_slump_mapper.core.checkpoint import build_network, bundled_checkpoint_path, load_checkpoint
from thaw_slump_mapper.model.fast_depthwise import has_slow_cpu_backward, use_fast_depthwise_backward
from thaw_slump_mapper.model.precision import choose_precision
from thaw_slump_mapper.model.training_steps import freeze_early_stages, freeze_whole_encoder, train_mode


def _pair():
    ckpt = load_checkpoint(bundled_checkpoint_path())
    precision = choose_precision("cpu", "fp32")
    plain, fast = (precision.prepare_network(build_network(ckpt)) for _ in range(2))
    for net in (plain, fast):
        freeze_early_stages(net, 2)
        train_mode(net)
    return plain, fast, precision


def test_gradients_equal_pytorchs_on_the_bundled_network():
    """Every trainable weight's gradient, through the encoder's strided, 5 x 5 and dilated
    depthwise layers and the ASPP, matches PyTorch's kernels to float rounding; the loss is the
    same number."""
    plain, fast, precision = _pair()
    # the DeepLabV3+ lite0 at output stride 16: 5 dilated depthwise convolutions in the last
    # two encoder stages and 3 in the ASPP, 3 strided ones (stages 2-4 begin), 4 more 5 x 5
    assert use_fast_depthwise_backward(fast) == 15
    assert use_fast_depthwise_backward(fast) == 0  # once only
    x = precision.prepare_input(torch.from_numpy(np.random.default_rng(3).normal(size=(2, 3, 96, 96)).astype(np.float32)))
    grads = []
    for net in (plain, fast):
        torch.manual_seed(0)  # the ASPP's dropout
        loss = net(x).square().mean()
        loss.backward()
        grads.append((float(loss.detach()), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}))
    (loss_plain, g_plain), (loss_fast, g_fast) = grads
    assert loss_plain == loss_fast
    assert g_plain.keys() == g_fast.keys()
    rewritten = {f"{n}.weight" for n, m in plain.named_modules() if has_slow_cpu_backward(m)}
    # the stride-2 layer of stage 2 lies in the fixed encoder stem + 2 stages: no gradient
    assert len(rewritten) == 15 and len(rewritten & g_fast.keys()) == 14
    # float rounding in a different summation order; gradients that are zero in exact
    # arithmetic (a batch norm's bias ahead of another batch norm) differ at 1e-7
    largest = max(float(g.abs().max()) for g in g_plain.values())
    for name in g_plain:
        torch.testing.assert_close(g_fast[name], g_plain[name], rtol=1e-3, atol=1e-5 * largest, msg=name)
    largest_rewritten = max(float(g_plain[n].abs().max()) for n in rewritten & g_plain.keys())
    assert largest_rewritten > 1e-3 * largest  # the rewritten layers do get real gradients


def test_state_dict_inference_and_the_traced_warmup_encoder_are_untouched():
    plain, fast, precision = _pair()
    use_fast_depthwise_backward(fast)
    assert list(plain.state_dict()) == list(fast.state_dict())
    x = precision.prepare_input(torch.rand(1, 3, 64, 64))
    plain.eval()
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), fast(x), rtol=0, atol=0)
    # the warm-up traces the fixed encoder under no_grad: the plain convolution is what it records
    train_mode(fast)
    freeze_whole_encoder(fast)
    features = fast.encoder(x)
    assert len(features) == len(plain.encoder(x))


def test_bf16_autocast_backward_runs_and_follows_pytorchs():
    """Under bf16 autocast (precision bf16 or bf16-decoder) the output gradient arrives in
    bf16 while the weight was saved in fp32; the backward computed in mixed dtypes and oneDNN
    refused it ("could not create a primitive descriptor"). Gradients now come back in each
    input's dtype and follow PyTorch's own bf16 backward to bf16 rounding."""
    for name in ("bf16", "bf16-decoder"):
        plain, fast, _ = _pair()
        use_fast_depthwise_backward(fast)
        precision = choose_precision("cpu", name)
        x = precision.prepare_input(torch.from_numpy(np.random.default_rng(4).normal(size=(2, 3, 96, 96)).astype(np.float32)))
        grads = []
        for net in (plain, fast):
            torch.manual_seed(0)
            precision.logits(net, x).float().square().mean().backward()
            grads.append({n: p.grad for n, p in net.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys()
        rewritten = [f"{n}.weight" for n, m in plain.named_modules() if has_slow_cpu_backward(m) and f"{n}.weight" in grads[0]]
        assert len(rewritten) == 14
        for n in rewritten:
            a, b = grads[0][n].flatten(), grads[1][n].flatten()
            assert b.dtype == torch.float32 and bool(torch.isfinite(b).all())
            assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) > 0.98, (name, n)


def test_both_gradients_equal_pytorchs_kernels_on_every_geometry():
    """Strided, dilated, 5 x 5, odd map sizes the stride does not divide (the forward's floor
    drops edge pixels), and maps narrower than some taps' offsets (those taps read only padding
    and must come out 0); the forward too, including where only the centre tap sees the map."""
    from thaw_slump_mapper.model.fast_depthwise import _depthwise, _input_gradient, _weight_gradient

    rng = np.random.default_rng(5)
    # (input shape, kernel, stride, dilation)
    cases = (((2, 8, 7, 11), 3, (1, 1), (2, 5)), ((3, 4, 9, 5), 5, (1, 1), (4, 1)), ((1, 6, 6, 6), 3, (1, 1), (12, 12)),
             ((2, 5, 12, 12), 5, (2, 2), (1, 1)), ((2, 5, 13, 11), 3, (2, 2), (1, 1)), ((1, 3, 9, 10), 5, (2, 2), (2, 2)),
             ((2, 4, 8, 8), 5, (1, 1), (1, 1)))
    for shape, kernel, stride, dilation in cases:
        channels = shape[1]
        padding = (kernel // 2 * dilation[0], kernel // 2 * dilation[1])
        x = torch.from_numpy(rng.normal(size=shape).astype(np.float32)).contiguous(memory_format=torch.channels_last)
        weight = torch.from_numpy(rng.normal(size=(channels, 1, kernel, kernel)).astype(np.float32))
        y = torch.nn.functional.conv2d(x, weight, None, stride, padding, dilation, channels)
        torch.testing.assert_close(_depthwise(x, weight, stride, padding, dilation), y, rtol=1e-4, atol=1e-5)
        grad = torch.from_numpy(rng.normal(size=y.shape).astype(np.float32))
        expected_x, expected_w, _ = torch.ops.aten.convolution_backward(grad, x, weight, None, list(stride), list(padding),
                                                                        list(dilation), False, [0, 0], channels, [True, True, False])
        got_x = _input_gradient(grad, weight, tuple(shape[-2:]), stride, padding, dilation)
        got_w = _weight_gradient(grad, x, kernel, stride, padding, dilation)
        assert got_x.shape == expected_x.shape and got_w.shape == expected_w.shape, (shape, kernel, stride, dilation)
        torch.testing.assert_close(got_x, expected_x, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got_w, expected_w, rtol=1e-4, atol=1e-4)
        assert float(expected_w.abs().max()) > 0.1 and float(expected_x.abs().max()) > 0.1
