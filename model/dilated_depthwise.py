"""A faster backward pass for the dilated depthwise convolutions of DeepLabV3+ on the CPU.

At output stride 16 the encoder's last stages and the ASPP run depthwise convolutions with
dilation 2 to 36. PyTorch's CPU backward for them is a slow generic kernel: for the
1152-channel 5 x 5 convolutions at 1/16 resolution it took 16 ms for the input gradient
alone, against 2 ms undilated, and these layers were a third of a training step's
convolution backward (profile in docs/TRAINING.md, "Throughput"). For stride 1, zero
"same" padding and an odd kernel, the input gradient of a depthwise convolution IS a
depthwise convolution of the output gradient with the kernel turned by 180 degrees, same
dilation and padding, and that runs on oneDNN's fast forward kernel. The weight gradient
was PyTorch's dilated kernel too, 22-40 ms for a 1152-channel layer at 12 x 12 on an AVX2
EPYC; it is now one multiply-and-sum of the output gradient with the shifted input per
kernel tap (``_weight_gradient``): 4-8 ms, and taps that only ever see the zero padding (the
ASPP's dilations 12-36 on a 12 x 12 map) are skipped. Exact up to float rounding; weights,
state dict and inference are untouched (the module's forward is replaced on the instance,
only while gradients flow).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Tuple

FAST_BACKWARD_ATTRIBUTE = "_thaw_slump_fast_depthwise"


@lru_cache(maxsize=1)
def _function() -> Any:
    import torch

    class DilatedDepthwiseConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, padding: Tuple[int, int], dilation: Tuple[int, int]):
            ctx.save_for_backward(x, weight)
            ctx.padding, ctx.dilation = padding, dilation
            return _depthwise(x, weight, padding, dilation)

        @staticmethod
        def backward(ctx, grad):
            # Under autocast the forward ran in the output gradient's dtype (bf16 for the
            # decoder's ASPP with precision bf16-decoder) while x and the weight were saved as
            # given: compute in grad's dtype, hand each gradient back in its input's dtype.
            x, weight = ctx.saved_tensors
            work = weight.to(grad.dtype)
            grad_x = grad_w = None
            if ctx.needs_input_grad[0]:
                grad_x = _depthwise(grad, work.flip(-1, -2), ctx.padding, ctx.dilation).to(x.dtype)
            if ctx.needs_input_grad[1]:
                grad_w = _weight_gradient(grad, x.to(grad.dtype), weight.shape[-1], ctx.padding, ctx.dilation).to(weight.dtype)
            return grad_x, grad_w, None, None

    return DilatedDepthwiseConv


def _depthwise(x: Any, weight: Any, padding: Tuple[int, int], dilation: Tuple[int, int]) -> Any:
    """A stride-1 depthwise convolution. When every tap but the centre reads only padding (the
    ASPP's dilations 12-36 on a 12 x 12 map at crop 192) it is the centre weight times the
    input, which is what it computes here instead of the full convolution."""
    import torch.nn.functional as F

    kernel, (height, width) = weight.shape[-1], x.shape[-2:]
    if dilation[0] >= height and dilation[1] >= width:  # the nearest off-centre tap is dilation px away
        centre = weight[:, 0, kernel // 2, kernel // 2]
        return x * centre.view(1, -1, 1, 1)
    return F.conv2d(x, weight, None, 1, padding, dilation, weight.shape[0])


def _weight_gradient(grad: Any, x: Any, kernel: int, padding: Tuple[int, int], dilation: Tuple[int, int]) -> Any:
    """d loss / d weight of a stride-1 depthwise convolution, (C, 1, k, k): for each tap (i, j)
    the sum over batch and pixels of the output gradient times the input shifted by the
    tap's offset. A tap whose offset exceeds the map on either axis reads only padding: 0."""
    import torch
    import torch.nn.functional as F

    channels, (height, width) = grad.shape[1], grad.shape[-2:]
    (pad_y, pad_x), (dil_y, dil_x) = padding, dilation
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y))
    out = torch.zeros(channels, kernel, kernel, dtype=grad.dtype, device=grad.device)
    for i in range(kernel):
        if abs(i * dil_y - pad_y) >= height:
            continue
        for j in range(kernel):
            if abs(j * dil_x - pad_x) >= width:
                continue
            shifted = padded[:, :, i * dil_y:i * dil_y + height, j * dil_x:j * dil_x + width]
            out[:, i, j] = (grad * shifted).sum((0, 2, 3))
    return out.unsqueeze(1)


class FastDepthwiseForward:
    """The forward of one dilated depthwise ``Conv2d`` through ``DilatedDepthwiseConv`` while
    autograd records; plain ``F.conv2d`` otherwise (evaluation, tracing, export)."""

    def __init__(self, conv) -> None:
        self.conv = conv
        self.function = _function()

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        conv = self.conv
        if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad):
            return self.function.apply(x, conv.weight, conv.padding, conv.dilation)
        return F.conv2d(x, conv.weight, None, 1, conv.padding, conv.dilation, conv.groups)


def is_dilated_depthwise(module) -> bool:
    """A ``Conv2d`` the rewrite is exact for: depthwise, dilated, stride 1, no bias, zero
    padding of (kernel // 2) x dilation, odd square kernel."""
    import torch

    if type(module) is not torch.nn.Conv2d:
        return False
    k = module.kernel_size
    return (module.groups == module.in_channels == module.out_channels and module.bias is None and module.stride == (1, 1)
            and module.padding_mode == "zeros" and max(module.dilation) > 1 and k[0] == k[1] and k[0] % 2 == 1
            and module.padding == (k[0] // 2 * module.dilation[0], k[1] // 2 * module.dilation[1]))


def use_fast_depthwise_backward(net) -> int:
    """Route every qualifying dilated depthwise convolution of ``net`` through the faster
    backward; returns how many. Only worth it on the CPU: CUDA's kernels are fine."""
    count = 0
    for module in net.modules():
        if is_dilated_depthwise(module) and not getattr(module, FAST_BACKWARD_ATTRIBUTE, False):
            # an instance attribute, like the frozen encoder's traced forward: the state dict
            # and the module tree stay as they are
            object.__setattr__(module, "forward", FastDepthwiseForward(module))
            setattr(module, FAST_BACKWARD_ATTRIBUTE, True)
            count += 1
    return count
