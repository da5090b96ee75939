"""aae_fast.nn: FusedLinear and FusedMLP against nn.Linear / nn.Sequential (float64 oracle),
their parameter names, autocast, compile, and their errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aae_fast.nn import FusedLinear, FusedMLP
from aae_fast.reference.networks import mlp

ACTS = {
    "identity": nn.Identity(),
    "relu": nn.ReLU(),
    "leaky_relu": nn.LeakyReLU(0.2),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
}


@pytest.mark.parametrize("activation", sorted(ACTS))
@pytest.mark.parametrize("rows, k, n", [(1, 1, 1), (3, 7, 17), (17, 784, 100)])
def test_fused_linear_matches_linear_in_float64(activation, rows, k, n):
    torch.manual_seed(0)
    layer = FusedLinear(k, n, activation=activation, negative_slope=0.2)
    x = torch.randn(rows, k, requires_grad=True)
    y = layer(x)
    y.backward(torch.ones_like(y))
    x64 = x.detach().double().requires_grad_()
    w64 = layer.weight.detach().double().requires_grad_()
    b64 = layer.bias.detach().double().requires_grad_()
    y64 = ACTS[activation](x64 @ w64.T + b64)
    y64.backward(torch.ones_like(y64))
    torch.testing.assert_close(y, y64.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x64.grad.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, w64.grad.float(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(layer.bias.grad, b64.grad.float(), rtol=1e-5, atol=1e-4)


def test_fused_linear_keeps_nn_linear_names_and_init_and_leading_dims():
    torch.manual_seed(0)
    ref = nn.Linear(5, 4)
    torch.manual_seed(0)
    fused = FusedLinear(5, 4)
    assert list(fused.state_dict()) == list(ref.state_dict())
    for a, b in zip(fused.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b)
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(fused(x), ref(x))
    assert FusedLinear(5, 4, bias=False).bias is None


def test_from_sequential_shares_parameters_and_keys():
    seq = mlp(6, (9, 4), 3)
    fused = FusedMLP.from_sequential(seq)
    assert list(fused.state_dict()) == list(seq.state_dict()) == [
        "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"
    ]
    assert all(a is b for a, b in zip(fused.parameters(), seq.parameters()))
    assert [layer.activation for layer in fused.layers] == ["relu", "relu", "identity"]
    x = torch.randn(5, 6)
    torch.testing.assert_close(fused(x), seq(x))
    built = FusedMLP(6, (9, 4), 3)
    assert list(built.state_dict()) == list(seq.state_dict())
    assert len(built) == 3


def test_from_sequential_absorbs_other_activations():
    seq = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.3), nn.Linear(4, 2), nn.Sigmoid())
    fused = FusedMLP.from_sequential(seq)
    assert [(l.activation, l.negative_slope) for l in fused.layers][0] == ("leaky_relu", 0.3)
    assert fused.layers[1].activation == "sigmoid"
    x = torch.randn(7, 3)
    torch.testing.assert_close(fused(x), seq(x))


def test_from_sequential_rejects_what_it_cannot_fuse():
    assert not FusedMLP.can_fuse(nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="activation .* at index 1, got Dropout"):
        FusedMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="nn.Linear at index 0, got ReLU"):
        FusedMLP.from_sequential(nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(ValueError, match="in_features must be a positive int, got 0"):
        FusedLinear(0, 3)
    with pytest.raises(ValueError, match="activation must be one of .* got 'gelu'"):
        FusedLinear(2, 3, activation="gelu")
    with pytest.raises(ValueError, match=r"x must have shape \[\*, 4\] \(in_features\), got \[2, 3\]"):
        FusedLinear(4, 3)(torch.randn(2, 3))
    with pytest.raises(TypeError, match="x must have the weight's dtype torch.float32"):
        FusedLinear(4, 3)(torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="linear must be an nn.Linear, got ReLU"):
        FusedLinear.from_linear(nn.ReLU())


def test_leaky_relus_with_a_negative_slope_are_not_fused():
    seq = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(-0.2), nn.Linear(8, 2))
    assert not FusedMLP.can_fuse(seq)
    with pytest.raises(ValueError, match="LeakyReLU at index 1 has negative_slope -0.2"):
        FusedMLP.from_sequential(seq)
    with pytest.raises(ValueError, match="negative_slope must be finite and >= 0, got -0.5"):
        FusedLinear.from_linear(nn.Linear(4, 3), "leaky_relu", -0.5)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: FusedMLP(4, (8,), 2, out_activation="gelu"), ValueError,
         "out_activation must be one of .* got 'gelu'"),
        (lambda: FusedMLP(4, (8,), 2, activation="gelu"), ValueError,
         "activation must be one of .* got 'gelu'"),
        (lambda: FusedMLP(4, (8, 0), 2), ValueError, r"hidden\[1\] must be a positive int, got 0"),
        (lambda: FusedMLP(4, (8.0,), 2), ValueError, r"hidden\[0\] must be a positive int, got 8.0"),
        (lambda: FusedMLP(4, 8, 2), TypeError, "hidden must be a sequence of positive ints, got 8"),
        (lambda: FusedMLP(0, (8,), 2), ValueError, "in_features must be a positive int, got 0"),
        (lambda: FusedLinear(4, 3, activation="leaky_relu", negative_slope="0.1"), TypeError,
         "negative_slope must be a real number, got '0.1'"),
        (lambda: FusedLinear(4, 3, dtype=torch.complex64), TypeError,
         "dtype must be a floating-point torch.dtype or None, got torch.complex64"),
    ],
)
def test_constructor_errors_name_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_numpy_integer_widths_are_taken_as_nn_linear_takes_them():
    np = pytest.importorskip("numpy")
    layer = FusedLinear(np.int64(4), np.int32(3))
    assert (layer.in_features, layer.out_features) == (4, 3)
    assert type(layer.in_features) is int
    assert FusedMLP(np.int64(4), [np.int64(5)], 2)(torch.randn(2, 4)).shape == (2, 2)


def test_meta_tensors_give_shapes_as_nn_linear_does():
    layer = FusedLinear(4, 3, activation="relu", device="meta")
    assert layer(torch.empty(5, 4, device="meta")).shape == (5, 3)
    mlp = FusedMLP(4, (6,), 2).to("meta")
    assert mlp(torch.empty(7, 4, device="meta")).shape == (7, 2)


def test_identity_output_may_be_modified_in_place_as_after_nn_linear():
    """The identity layer saves no output for its backward, so an in-place op after it (an
    in-place dropout or ReLU, a residual add) works as after nn.Linear."""
    torch.manual_seed(1)
    fused = FusedMLP(4, (5,), 3)
    eager = mlp(4, [5], 3)
    eager.load_state_dict(fused.state_dict())
    x = torch.randn(6, 4)
    grads = []
    for net in (fused, eager):
        out = net(x)
        out.mul_(2.0)  # in place on the identity layer's output
        torch.relu_(out).sum().backward()
        grads.append([p.grad for p in net.parameters()])
    for actual, expected in zip(*grads, strict=True):
        torch.testing.assert_close(actual, expected)


def test_autocast_bf16_computes_in_bf16_and_grads_reach_fp32_weights():
    torch.manual_seed(0)
    seq = mlp(32, (64,), 8)
    fused = FusedMLP.from_sequential(seq)
    x = torch.randn(16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_ref = fused(x), seq(x)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    # Both are bf16 GEMMs with fp32 accumulation: the same to a few bf16 ulps.
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fused.parameters())


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_autocast_leaves_float64_alone_as_nn_linear_does(amp_dtype):
    torch.manual_seed(0)
    seq = mlp(5, (7,), 3).double()
    fused = FusedMLP.from_sequential(seq)
    x = torch.randn(4, 5, dtype=torch.float64)
    with torch.autocast("cpu", dtype=amp_dtype):
        y, y_ref = fused(x), seq(x)
    assert y.dtype == y_ref.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)


def test_fused_mlp_compiles_fullgraph_forward_and_backward():
    torch.manual_seed(0)
    fused = FusedMLP(6, (9,), 3)
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 6)
    y = compiled(x)
    y.sum().backward()
    grads = [p.grad.clone() for p in fused.parameters()]
    fused.zero_grad()
    fused(x).sum().backward()
    torch.testing.assert_close(y, fused(x))
    for g, p in zip(grads, fused.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_forward_asks_autocast_nothing_dynamo_cannot_fold(monkeypatch):
    """torch 2.11's Dynamo refused to trace torch.amp.is_autocast_available, so a compiled
    FusedLinear failed on the H200 (fused_compile): the forward must not call it for cpu/cuda."""

    def refuse(device_type):
        raise AssertionError(f"is_autocast_available({device_type!r}) called in the forward")

    layer = FusedLinear(4, 3, activation="relu")
    x = torch.randn(5, 4)
    expected = layer(x)
    monkeypatch.setattr(torch.amp, "is_autocast_available", refuse)
    torch.testing.assert_close(layer(x), expected)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    assert layer.to("meta")(torch.empty(5, 4, device="meta")).shape == (5, 3)
