"""A faster backward pass for the dilated depthwise convolutions of DeepLabV3+ on the CPU.

At output stride 16 the encoder's last stages and the ASPP run depthwise convolutions with
dilation 2 to 36. PyTorch's CPU backward for them is a slow generic kernel: for the
1152-channel 5 x 5 convolutions at 1/16 resolution it took 16 ms for the input gradient
alone, against 2 ms undilated, and these layers were a third of a training step's
convolution backward (profile in docs/TRAINING.md, "Throughput"). For stride 1, zero
"same" padding and an odd kernel, the input gradient of a depthwise convolution IS a
depthwise convolution of the output gradient with the kernel turned by 180 degrees, same
dilation and padding, and that runs on oneDNN's fast forward kernel. The weight gradient
keeps PyTorch's own kernel. Exact up to float rounding; weights, state dict and inference
are untouched (the module's forward is replaced on the instance, only while gradients flow).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Tuple

FAST_BACKWARD_ATTRIBUTE = "_thaw_slump_fast_depthwise"


@lru_cache(maxsize=1)
def _function() -> Any:
    import torch
    import torch.nn.functional as F

    class DilatedDepthwiseConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, padding: Tuple[int, int], dilation: Tuple[int, int]):
            ctx.save_for_backward(x, weight)
            ctx.padding, ctx.dilation = padding, dilation
            return F.conv2d(x, weight, None, 1, padding, dilation, weight.shape[0])

        @staticmethod
        def backward(ctx, grad):
            # Under autocast the forward ran in the output gradient's dtype (bf16 for the
            # decoder's ASPP with precision bf16-decoder) while x and the weight were saved as
            # given: compute in grad's dtype, hand each gradient back in its input's dtype.
            x, weight = ctx.saved_tensors
            work = weight.to(grad.dtype)
            grad_x = grad_w = None
            if ctx.needs_input_grad[0]:
                grad_x = F.conv2d(grad, work.flip(-1, -2), None, 1, ctx.padding, ctx.dilation, weight.shape[0]).to(x.dtype)
            if ctx.needs_input_grad[1]:
                grad_w = torch.ops.aten.convolution_backward(
                    grad, x.to(grad.dtype), work, None, [1, 1], list(ctx.padding), list(ctx.dilation), False, [0, 0],
                    weight.shape[0], [False, True, False])[1].to(weight.dtype)
            return grad_x, grad_w, None, None

    return DilatedDepthwiseConv


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
