"""A faster weight gradient for depthwise convolutions on small feature maps, on the CPU.

oneDNN's depthwise-convolution weight gradient (what ``Conv2d.backward`` calls on the CPU) is very slow on
small feature maps: about 7 to 50 ms for a batch of 64 maps of 2x2 or 4x4 with 144 or 288 channels on the CPU
this was measured on (0.3 to 7 ms on another, where the gain is smaller: README, Performance), where its
forward pass takes well under a millisecond. Those maps are the late stages of the digits space (8x8
images), of CIFAR-10 networks and of ImageNet networks at small input sizes, and there this one gradient
took up to a third of a supernet training step. (``pytorch/pytorch#13716`` tracks slow depthwise
convolutions on the CPU.)

:func:`use_fast_depthwise_grad` gives such convolutions a backward that computes the weight gradient as
``k*k`` channels-last multiply-and-sum reductions, one per kernel offset over the input it reads
without padding (each vectorises over channels), and leaves the input gradient to ATen. It is taken
only where it was measured faster: training on the CPU, float32, input maps of at most 2x2, or of at
most 4x4 with a kernel of 5 or more (``benchmarks/depthwise_grad.py`` prints both timings per shape).
Everything else — CUDA, eval mode, inference and ONNX export, larger maps — runs ``nn.Conv2d.forward``
unchanged. Results equal ATen's up to float rounding (``tests/test_depthwise.py``); the module keeps its
class's parameters and state_dict keys, and :func:`plain_convs` turns it back into ``nn.Conv2d``
(exported models are plain timm networks).

:class:`StridedPointwiseConv2d` works around a crash, not a slow path: on the CPU, at one thread, the weight
gradient of a 1x1 convolution of stride 2 over channels_last input with fewer than 8 input channels per group
corrupts the heap (torch 2.14.1; "double free or corruption", "corrupted double-linked list": the process aborts,
with oneDNN off, too). DARTS's and ENAS's factorized reduce is such a convolution wherever a cell has fewer than 8
channels, so a small cell space trained at ``threads: 1`` died in its first steps. The same convolution applied to
the input subsampled first (``x[:, :, ::2, ::2]``, then stride 1) is exactly the same function and does not crash;
it is taken only where the crash is (``benchmarks``-style timing on a 2-core x86: 2x slower than ATen's at 16
channels, so not beyond). :func:`use_fast_depthwise_grad` switches both kinds of module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastDepthwiseConv2d", "StridedPointwiseConv2d", "TRAINING_CONVS", "use_fast_depthwise_grad",
           "plain_convs", "depthwise_weight_grad", "fast_path_applies"]

# input channels per group below which the CPU's strided 1x1 weight gradient crashes (StridedPointwiseConv2d)
_POINTWISE_CRASH_BELOW = 8


def fast_path_applies(in_hw: tuple[int, int], kernel: tuple[int, int]) -> bool:
    """Where the reduction beats oneDNN's weight gradient (measured; see the module docstring): input maps
    of at most 2x2, or at most 4x4 with a kernel of 5 or more. (A 3x3 kernel on 4x4 maps, stride 1 or 2, is
    4-5x faster in oneDNN.)"""
    area = in_hw[0] * in_hw[1]
    return area <= 4 or (area <= 16 and min(kernel) >= 5)


def _taps(out_len: int, in_len: int, k: int, dilation: int, stride: int, pad: int) -> list[tuple[int, ...]]:
    """Along one axis, the kernel taps that read real input rather than only padding: (tap, first output,
    last output, first input index read)."""
    taps = []
    for t in range(k):
        offset = t * dilation
        first = max(0, -(-(pad - offset) // stride))
        last = min(out_len - 1, (in_len - 1 + pad - offset) // stride)
        if first <= last:
            taps.append((t, first, last, first * stride + offset - pad))
    return taps


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                          stride: tuple[int, int], padding: tuple[int, int],
                          dilation: tuple[int, int]) -> torch.Tensor:
    """d loss / d weight of ``F.conv2d(x, weight, stride=..., padding=..., dilation=..., groups=C)``.

    ``weight`` has shape (C, 1, kh, kw); ``grad_out`` is the gradient of the output (N, C, Ho, Wo).
    Each kernel offset multiplies only the part of the input it reads without padding (on a 2x2 map with
    a 5x5 kernel, 16 of the 25 offsets read nothing but padding and are 0), so nothing is padded or copied.
    """
    c = x.shape[1]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    xs = x.permute(0, 2, 3, 1)  # N, H, W, C: views, contiguous when the tensors are channels_last
    gs = grad_out.permute(0, 2, 3, 1)
    h, w, ho, wo = xs.shape[1], xs.shape[2], gs.shape[1], gs.shape[2]
    out = x.new_zeros(kh, kw, c)
    cols = _taps(wo, w, kw, dw, sw, pw)
    for i, r0, r1, h0 in _taps(ho, h, kh, dh, sh, ph):
        for j, c0, c1, w0 in cols:
            window = xs[:, h0:h0 + sh * (r1 - r0) + 1:sh, w0:w0 + sw * (c1 - c0) + 1:sw]
            torch.sum((gs[:, r0:r1 + 1, c0:c1 + 1] * window).reshape(-1, c), 0, out=out[i, j])
    return out.permute(2, 0, 1).unsqueeze(1)


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(stride), list(padding), list(dilation), False, [0, 0],
                weight.shape[0], [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x, grad_out, tuple(weight.shape[2:]), stride, padding, dilation)
        return grad_x, grad_w, None, None, None


def _cpu_training_step(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv(x)`` is a CPU training step whose weight gradient is taken (images, not traced or scripted):
    where the classes below replace ATen's path."""
    return (conv.training and x.device.type == "cpu" and x.dim() == 4 and torch.is_grad_enabled()
            and conv.weight.requires_grad and not torch.jit.is_tracing() and not torch.jit.is_scripting())


class FastDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (depthwise, no bias, zero padding) whose CPU training step uses the faster weight gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _cpu_training_step(self, x) and x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            if fast_path_applies((x.shape[2], x.shape[3]), self.kernel_size):
                return _DepthwiseConv.apply(x, self.weight, self.stride, self.padding, self.dilation)
        return super().forward(x)


class StridedPointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (1x1, stride > 1, no padding) whose CPU training step with few input channels per group
    subsamples the input first and convolves at stride 1: the same function, without the heap corruption of
    the strided kernel's weight gradient there (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _cpu_training_step(self, x) and self.weight.shape[1] < _POINTWISE_CRASH_BELOW:
            sh, sw = self.stride
            return F.conv2d(x[:, :, ::sh, ::sw], self.weight, self.bias, 1, 0, 1, self.groups)
        return super().forward(x)


# the classes use_fast_depthwise_grad switches convolutions to; each is the nn.Conv2d it stands for
TRAINING_CONVS = (FastDepthwiseConv2d, StridedPointwiseConv2d)


def _eligible(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.groups == m.in_channels == m.out_channels and m.bias is None
            and m.padding_mode == "zeros" and not isinstance(m.padding, str))


def _strided_pointwise(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and tuple(m.kernel_size) == (1, 1) and tuple(m.stride) != (1, 1)
            and not isinstance(m.padding, str) and tuple(m.padding) == (0, 0))


def use_fast_depthwise_grad(model: nn.Module) -> int:
    """Switch every plain depthwise ``nn.Conv2d`` of ``model`` to :class:`FastDepthwiseConv2d`, and every strided
    1x1 one to :class:`StridedPointwiseConv2d`, in place.

    Parameters, buffers and state_dict keys stay as they are. Returns the number of modules switched.
    """
    n = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = FastDepthwiseConv2d
            n += 1
        elif _strided_pointwise(m):
            m.__class__ = StridedPointwiseConv2d
            n += 1
    return n


def plain_convs(model: nn.Module) -> nn.Module:
    """Undo :func:`use_fast_depthwise_grad` in place (every module it switched back to nn.Conv2d); returns model."""
    for m in model.modules():
        if type(m) in TRAINING_CONVS:
            m.__class__ = nn.Conv2d
    return model
