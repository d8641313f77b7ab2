"""A faster backward pass for the depthwise convolutions of DeepLabV3+ lite0 on the CPU.

PyTorch's CPU backward for a depthwise convolution is a fast oneDNN kernel only in the plain
case: 3 x 3, stride 1, no dilation. Everything else falls to slow generic kernels, and those
layers were most of a training step's convolution backward (profile in docs/TRAINING.md,
"Throughput"; bf16 at crop 192, 2 cores):
  * dilated (the encoder's last stages at output stride 16, the ASPP): the input gradient of a
    1152-channel 5 x 5 layer took 7-16 ms against 2 ms undilated;
  * strided (the first block of stages 2-4): the input gradient of the 144-channel 5 x 5
    stride-2 layer at 48 px took 22 ms, the 240-channel 3 x 3 one 13-15 ms;
  * 5 x 5 (stages 3 and 5): the weight gradient took 7-13 ms a layer.
This module computes both gradients from fast primitives, exactly up to float rounding:
  * input gradient = a stride-1 depthwise convolution (oneDNN's fast forward) of the output
    gradient, spread out by the stride with zeros between, with the kernel turned by 180
    degrees and the same dilation: 2.5 ms for that 22 ms layer;
  * weight gradient = for each kernel tap, the sum over batch and pixels of the output gradient
    times the input shifted by the tap's offset, summed only where the shifted input lies inside
    the map: 3-5 ms for a 5 x 5 layer. No padded copy of the input is made (padding the
    320-channel ASPP input by 24 and 36 px cost 7 and 14 ms a step in zero fills), border taps multiply
    smaller blocks, and taps that only ever read padding (the ASPP's dilations 12-36 on a
    12 x 12 map) are skipped;
  * where only the centre tap sees the map (those ASPP layers), the convolution is the centre
    weight times its input.
Weights, state dict and inference are untouched: the module's forward is replaced on the
instance, and takes this path only while gradients flow.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, List, Tuple

FAST_BACKWARD_ATTRIBUTE = "_thaw_slump_fast_depthwise"
Pair = Tuple[int, int]


@lru_cache(maxsize=1)
def _function() -> Any:
    import torch

    class FastDepthwiseConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, stride: Pair, padding: Pair, dilation: Pair):
            ctx.save_for_backward(x, weight)
            ctx.geometry = (stride, padding, dilation)
            return _depthwise(x, weight, stride, padding, dilation)

        @staticmethod
        def backward(ctx, grad):
            # Under autocast the forward ran in the output gradient's dtype (bf16) while x and the
            # weight were saved as given: compute in grad's dtype, hand each gradient back in its
            # input's dtype.
            x, weight = ctx.saved_tensors
            stride, padding, dilation = ctx.geometry
            work = weight.to(grad.dtype)
            grad_x = grad_w = None
            if ctx.needs_input_grad[0]:
                grad_x = _input_gradient(grad, work, tuple(x.shape[-2:]), stride, padding, dilation).to(x.dtype)
            if ctx.needs_input_grad[1]:
                grad_w = _weight_gradient(grad, x.to(grad.dtype), weight.shape[-1], stride, padding, dilation).to(weight.dtype)
            return grad_x, grad_w, None, None, None

    return FastDepthwiseConv


def _same_padding(kernel: int, dilation: Pair) -> Pair:
    return (kernel // 2 * dilation[0], kernel // 2 * dilation[1])


def _depthwise(x: Any, weight: Any, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """A depthwise convolution. At stride 1 with "same" padding, when every tap but the centre
    reads only padding (the ASPP's dilations 12-36 on a 12 x 12 map at crop 192), it is the
    centre weight times the input, which is what it computes here instead of the full one."""
    import torch.nn.functional as F

    kernel, (height, width) = weight.shape[-1], x.shape[-2:]
    if (stride == (1, 1) and padding == _same_padding(kernel, dilation)
            and dilation[0] >= height and dilation[1] >= width):  # the nearest off-centre tap is dilation px away
        centre = weight[:, 0, kernel // 2, kernel // 2]
        return x * centre.view(1, -1, 1, 1)
    return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])


def _input_gradient(grad: Any, weight: Any, input_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """d loss / d input: the output gradient, with stride - 1 zeros put between its pixels,
    convolved at stride 1 with the turned kernel (a transposed convolution, written as the
    forward kernel oneDNN runs fast)."""
    import torch
    import torch.nn.functional as F

    kernel = weight.shape[-1]
    turned = weight.flip(-1, -2)
    if stride == (1, 1) and padding == _same_padding(kernel, dilation):
        return _depthwise(grad, turned, stride, padding, dilation)
    batch, channels, out_h, out_w = grad.shape
    spread = grad
    if stride != (1, 1):
        spread = torch.empty((batch, channels, (out_h - 1) * stride[0] + 1, (out_w - 1) * stride[1] + 1), dtype=grad.dtype,
                             device=grad.device, memory_format=_memory_format(grad)).zero_()
        spread[:, :, ::stride[0], ::stride[1]] = grad
    # full-correlation padding d(k-1) - p; the forward's floor division may have dropped up to
    # stride - 1 input rows and columns at the far edge, whose gradient comes from the extra padding
    before = [dilation[a] * (kernel - 1) - padding[a] for a in (0, 1)]
    after = [before[a] + input_size[a] - (spread.shape[2 + a] + 2 * before[a] - dilation[a] * (kernel - 1)) for a in (0, 1)]
    spread = F.pad(spread, (before[1], after[1], before[0], after[0]))
    return F.conv2d(spread, turned, None, 1, 0, dilation, channels)


def _memory_format(t: Any) -> Any:
    import torch

    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _tap_ranges(kernel: int, dilation: int, padding: int, stride: int, out_size: int, in_size: int) -> List[Tuple[int, int, int, int]]:
    """Along one axis, for each tap that reads at least one input pixel: (tap index, first and
    one-past-last output pixel whose input lies inside the map, first such input pixel). Output
    pixel h reads input h * stride + tap * dilation - padding; the rest read zero padding and add 0."""
    ranges = []
    for i in range(kernel):
        offset = i * dilation - padding
        first = max(0, -(offset // stride))  # ceil(-offset / stride)
        last = min(out_size - 1, (in_size - 1 - offset) // stride)
        if first <= last:
            ranges.append((i, first, last + 1, first * stride + offset))
    return ranges


def _weight_gradient(grad: Any, x: Any, kernel: int, stride: Pair, padding: Pair, dilation: Pair) -> Any:
    """d loss / d weight of a depthwise convolution, (C, 1, k, k): for each tap (i, j) the sum
    over batch and pixels of the output gradient times the input shifted by the tap's offset
    (and sampled at the stride), over only the output pixels whose input lies inside the map.
    No padded copy of the input is made, and a tap that reads only padding stays 0."""
    import torch

    channels, out_size, in_size = grad.shape[1], grad.shape[-2:], x.shape[-2:]
    rows, cols = (_tap_ranges(kernel, dilation[a], padding[a], stride[a], out_size[a], in_size[a]) for a in (0, 1))
    out = torch.zeros(channels, kernel, kernel, dtype=grad.dtype, device=grad.device)
    for i, y0, y1, in_y in rows:
        grad_rows = grad[:, :, y0:y1]
        x_rows = x[:, :, in_y:in_y + (y1 - y0 - 1) * stride[0] + 1:stride[0]]
        for j, x0, x1, in_x in cols:
            shifted = x_rows[:, :, :, in_x:in_x + (x1 - x0 - 1) * stride[1] + 1:stride[1]]
            out[:, i, j] = (grad_rows[:, :, :, x0:x1] * shifted).sum((0, 2, 3))
    return out.unsqueeze(1)


class FastDepthwiseForward:
    """The forward of one depthwise ``Conv2d`` through ``FastDepthwiseConv`` while autograd
    records; plain ``F.conv2d`` otherwise (evaluation, tracing, export)."""

    def __init__(self, conv) -> None:
        self.conv = conv
        self.function = _function()

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        conv = self.conv
        if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad):
            return self.function.apply(x, conv.weight, conv.stride, conv.padding, conv.dilation)
        return F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def has_slow_cpu_backward(module) -> bool:
    """A depthwise ``Conv2d`` this module computes the gradients of: no bias, zero padding, an
    odd square kernel, stride 1 or 2, and not the plain 3 x 3 undilated stride-1 case, whose
    PyTorch backward is already fast (0.5-2 ms; the tap loop would be slower)."""
    import torch

    if type(module) is not torch.nn.Conv2d:
        return False
    k = module.kernel_size
    if not (module.groups == module.in_channels == module.out_channels and module.bias is None
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple)
            and k[0] == k[1] and k[0] % 2 == 1 and module.stride in ((1, 1), (2, 2))):
        return False
    return max(module.dilation) > 1 or module.stride != (1, 1) or k[0] >= 5


def use_fast_depthwise_backward(net) -> int:
    """Route every depthwise convolution of ``net`` with a slow CPU backward through the fast
    one; returns how many. Only worth it on the CPU: CUDA's kernels are fine."""
    count = 0
    for module in net.modules():
        if has_slow_cpu_backward(module) and not getattr(module, FAST_BACKWARD_ATTRIBUTE, False):
            # an instance attribute, like the frozen encoder's traced forward: the state dict
            # and the module tree stay as they are
            object.__setattr__(module, "forward", FastDepthwiseForward(module))
            setattr(module, FAST_BACKWARD_ATTRIBUTE, True)
            count += 1
    return count

