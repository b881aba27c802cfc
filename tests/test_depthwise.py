"""The CPU depthwise weight gradient (automl.nn.depthwise) against ATen's, and where it is used; the strided
1x1 convolution that works around ATen's crash at one thread."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from automl.compile import load_compiled
from automl.nn.depthwise import (FastDepthwiseConv2d, StridedPointwiseConv2d, depthwise_weight_grad,
                                    fast_path_applies, plain_convs, use_fast_depthwise_grad)
from automl.train.loops import for_training

CASES = [  # channels, input size, kernel, stride, padding, dilation
    (8, (2, 2), 3, 1, 1, 1),
    (5, (2, 3), 3, 2, 1, 1),
    (8, (4, 4), 5, 1, 2, 1),
    (8, (4, 4), 5, 2, 2, 1),
    (3, (4, 4), 7, 1, 3, 1),
    (6, (5, 4), (3, 5), (2, 1), (1, 2), 1),
    (4, (4, 4), 3, 1, 2, 2),
    (4, (7, 7), 3, 3, 0, 1),
    (8, (2, 2), 5, 1, 2, 1),  # 16 of the 25 offsets read only padding
    (4, (3, 3), 3, 1, 3, 1),  # padding wider than the kernel reaches: some outputs see no input at all
    (4, (5, 6), 3, 2, 3, 2),
]


@pytest.mark.parametrize("c,hw,k,s,p,d", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_weight_grad_equals_aten(c, hw, k, s, p, d, channels_last):
    g = torch.Generator().manual_seed(0)
    pair = nn.modules.utils._pair
    x = torch.randn(3, c, *hw, generator=g, dtype=torch.float64)
    w = torch.randn(c, 1, *pair(k), generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(x, w, None, s, p, d, c)
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    ref = torch.ops.aten.convolution_backward(go, x, w, None, list(pair(s)), list(pair(p)), list(pair(d)), False,
                                              [0, 0], c, [False, True, False])[1]
    got = depthwise_weight_grad(x, go, pair(k), pair(s), pair(p), pair(d))
    assert got.shape == w.shape
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("hw,k,s", [((2, 2), 3, 1), ((4, 4), 5, 2), ((4, 4), 3, 2)])
def test_module_gradients_equal_plain_conv(hw, k, s):
    """A FastDepthwiseConv2d in training gives nn.Conv2d's output and both gradients (fast path or not)."""
    torch.manual_seed(0)
    plain = nn.Conv2d(6, 6, k, stride=s, padding=k // 2, groups=6, bias=False)
    fast = nn.Conv2d(6, 6, k, stride=s, padding=k // 2, groups=6, bias=False)
    fast.load_state_dict(plain.state_dict())
    assert use_fast_depthwise_grad(fast) == 1 and type(fast) is FastDepthwiseConv2d
    x = torch.randn(4, 6, *hw).contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = plain(xa), fast(xb)
    torch.testing.assert_close(yb, ya)
    go = torch.randn_like(ya)
    ya.backward(go)
    yb.backward(go)
    torch.testing.assert_close(xb.grad, xa.grad)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-5)


def test_fast_path_only_where_measured_faster():
    assert fast_path_applies((2, 2), (3, 3))
    assert fast_path_applies((1, 3), (3, 3))
    assert fast_path_applies((4, 4), (5, 5))
    assert not fast_path_applies((4, 4), (3, 3))  # oneDNN is faster there, stride 1 or 2
    assert not fast_path_applies((8, 8), (5, 5))


# torch.jit.trace is deprecated and still what the TorchScript ONNX exporter (dynamo=False) traces with
@pytest.mark.filterwarnings("ignore:`torch.jit.trace(_method)?` is deprecated:FutureWarning")
def test_fast_path_is_taken_only_in_cpu_training(monkeypatch):
    """Eval mode, no_grad and tracing (ONNX export) run nn.Conv2d.forward, untouched."""
    from automl.nn import depthwise

    calls = []
    real = depthwise._DepthwiseConv.apply
    monkeypatch.setattr(depthwise._DepthwiseConv, "apply", lambda *a: calls.append(1) or real(*a))
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    use_fast_depthwise_grad(conv)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 2, 2, generator=g)
    conv(x)
    assert len(calls) == 1
    with torch.no_grad():
        conv(x)
    conv.eval()
    conv(x)
    torch.jit.trace(conv.train(), x)
    conv(torch.randn(2, 4, 8, 8, generator=g))  # large map: ATen is faster there
    assert len(calls) == 1


def test_only_plain_depthwise_convs_are_switched():
    m = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4, bias=False),   # depthwise: switched
                      nn.Conv2d(4, 8, 1, bias=False),              # pointwise
                      nn.Conv2d(8, 8, 3, groups=8, bias=True),     # has a bias
                      nn.Conv2d(8, 8, 3, groups=4, bias=False),    # grouped, not depthwise
                      nn.Conv2d(8, 8, 3, groups=8, bias=False, padding="same"))
    keys = list(m.state_dict())
    assert use_fast_depthwise_grad(m) == 1
    assert [type(c) for c in m] == [FastDepthwiseConv2d] + [nn.Conv2d] * 4
    assert list(m.state_dict()) == keys


def test_supernet_for_training_on_cpu_trains_like_the_plain_supernet():
    """The digits supernet (depthwise convs on 4x4 and 2x2 maps): one path's gradients match the plain net's.
    The fast path runs in float32 only. This input (seed 0) is well conditioned: the two agree to 2e-6 of the
    largest gradient. Some other inputs are not (train-mode BatchNorm over 16 images on 2x2 maps): there float32
    rounding moves the two nets' gradients apart by up to 0.6 % (2 of 9 seeds; against float64, the fast path is
    the one further off on one of them and the plain path on the other)."""
    cs = load_compiled("spaces/digits.space")
    torch.manual_seed(0)
    plain = cs.build_supernet().train()
    fast = for_training(cs.build_supernet(), torch.device("cpu")).train()
    fast.load_state_dict(plain.state_dict())
    assert any(type(m) is FastDepthwiseConv2d for m in fast.modules())
    arch = torch.full((len(cs.num_choices),), 2)  # ir_k5_e6 everywhere: the widest blocks, no skips
    x, y = torch.randn(16, *cs.input_shape), torch.randint(0, cs.num_classes, (16,))
    for net in (plain, fast):
        F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last) if net is fast else x, arch), y).backward()
    grads = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
    assert grads and {n for n, p in fast.named_parameters() if p.grad is not None} == set(grads)
    for n, p in fast.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-5, msg=n)


def test_plain_convs_undoes_the_switch():
    m = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4, bias=False), nn.Conv2d(4, 4, 1))
    use_fast_depthwise_grad(m)
    assert plain_convs(m) is m and [type(c) for c in m] == [nn.Conv2d, nn.Conv2d]


def test_only_strided_pointwise_convs_take_the_subsampling_class_and_plain_convs_undoes_it():
    m = nn.Sequential(nn.Conv2d(4, 4, 1, stride=2, bias=False),   # DARTS's factorized reduce: switched
                      nn.Conv2d(4, 4, 1, stride=(1, 2)),            # strided along one axis, with a bias: switched
                      nn.Conv2d(4, 4, 1),                           # stride 1
                      nn.Conv2d(4, 4, 1, stride=2, padding=1),      # padded: the subsampled input is not its input
                      nn.Conv2d(4, 4, 3, stride=2))
    assert use_fast_depthwise_grad(m) == 2
    assert [type(c) for c in m] == [StridedPointwiseConv2d] * 2 + [nn.Conv2d] * 3
    assert [type(c) for c in plain_convs(m)] == [nn.Conv2d] * 5


@pytest.mark.parametrize("cin,groups,stride,hw", [(4, 1, 2, (8, 8)), (3, 1, 2, (7, 9)), (6, 2, (2, 3), (9, 8)),
                                                  (12, 1, 2, (8, 8))])
def test_strided_pointwise_conv_gives_conv2d_output_and_gradients(cin, groups, stride, hw):
    """Subsampling then a stride-1 1x1 convolution is the strided convolution (odd sizes keep the last row); the
    reference runs in the contiguous layout, where ATen's kernel does not crash. 12 input channels: ATen's own."""
    torch.manual_seed(0)
    plain = nn.Conv2d(cin, 8, 1, stride=stride, groups=groups, bias=True)
    sub = nn.Conv2d(cin, 8, 1, stride=stride, groups=groups, bias=True)
    sub.load_state_dict(plain.state_dict())
    use_fast_depthwise_grad(sub)
    assert type(sub) is StridedPointwiseConv2d
    x = torch.randn(4, cin, *hw)
    xa, xb = x.clone().requires_grad_(), x.contiguous(memory_format=torch.channels_last).requires_grad_()
    ya, yb = plain(xa), sub.to(memory_format=torch.channels_last)(xb)
    torch.testing.assert_close(yb, ya)
    go = torch.randn_like(ya)
    ya.backward(go)
    yb.backward(go)
    for a, b in ((xa.grad, xb.grad), (plain.weight.grad, sub.weight.grad), (plain.bias.grad, sub.bias.grad)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_a_strided_pointwise_conv_on_few_channels_trains_at_one_thread():
    """ATen's weight gradient of a 1x1 stride-2 convolution over channels_last input with fewer than 8 input
    channels corrupts the heap at one thread (torch 2.14.1; the process aborts). The network for_training
    makes trains there: in a child process, which would abort in its first steps."""
    script = textwrap.dedent("""
        import torch
        from torch import nn
        from automl.train.loops import for_training
        torch.set_num_threads(1)
        net = for_training(nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False)), torch.device("cpu"))
        for _ in range(30):
            x = torch.randn(4, 4, 16, 16).contiguous(memory_format=torch.channels_last)
            net(x).sum().backward()
        print("trained")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]
