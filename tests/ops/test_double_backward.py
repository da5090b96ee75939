"""Second-order gradients (create_graph=True, e.g. a gradient penalty) through the fused ops.

The backward ops (`<op>_backward`) have no derivative of their own; under create_graph=True the
autograd formulas, C++ (csrc/autograd/) and Python (the fallback without the extension), compute
the same gradient with differentiable torch ops instead. Checked with `gradgradcheck` on float64
inputs of odd shapes, in this process (the C++ formulas when the extension is loaded) and in a
subprocess with AAE_FAST_DISABLE_EXT=1 (the Python formulas). mmd is first-order only and says so
instead of returning a gradient with its second-order terms silently missing.
"""

import json
import os
import subprocess
import sys
import warnings

import torch

import aae_fast as af

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]


def cases():
    """name -> (function, float64 inputs that require grad), on fixed random data."""
    g = torch.Generator().manual_seed(3)

    def rand(*shape, low=None):
        t = torch.randn(*shape, generator=g, dtype=torch.float64)
        if low is not None:  # away from relu's kink, where finite differences straddle it
            t = t.sign() * (t.abs() + low)
        return t.requires_grad_()

    out = {}
    for act in ACTIVATIONS:
        x, w, b = rand(3, 5), rand(7, 5), rand(7, low=0.2)
        out[f"linear_act_{act}"] = (
            lambda x, w, b, act=act: af.ops.linear_act(x, w, b, act, 0.2), (x, w, b))
    out["linear_act_no_bias"] = (lambda x, w: af.ops.linear_act(x, w, None, "tanh"), (rand(4, 3), rand(2, 3)))
    out["adversarial_d_loss"] = (af.ops.adversarial_d_loss, (rand(6, 1), rand(5)))
    out["adversarial_g_loss"] = (af.ops.adversarial_g_loss, (rand(7),))
    for kind in ("bce", "mse"):
        out[f"reconstruction_loss_{kind}"] = (
            lambda o, t, kind=kind: af.ops.reconstruction_loss(o, t, kind), (rand(3, 4), rand(3, 4)))
    # A fresh stream per call: every evaluation draws the same eps.
    out["gaussian_reparameterize"] = (
        lambda mu, logvar: af.ops.gaussian_reparameterize(mu, logvar, af.PhiloxGenerator(5)),
        (rand(4, 3), rand(4, 3)))
    return out


def check_all() -> dict:
    """gradgradcheck of every case: name -> True, or the error's text."""
    results = {}
    for name, (fn, inputs) in cases().items():
        try:
            with warnings.catch_warnings():
                # "no autograd kernel" (a backward op run as if differentiable) must not happen.
                warnings.simplefilter("error")
                results[name] = torch.autograd.gradgradcheck(fn, inputs)
        except Exception as exc:  # reported by the caller, with the case's name
            results[name] = f"{type(exc).__name__}: {exc}"
    results["mmd_refuses_create_graph"] = mmd_refuses_create_graph()
    return results


def mmd_refuses_create_graph():
    """True when mmd under create_graph=True raises its first-order-only error, else what it did."""
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64)
    try:
        torch.autograd.grad(af.ops.mmd(x, y), x, create_graph=True)
    except RuntimeError as exc:
        return "mmd supports first-order gradients only" in str(exc) or str(exc)
    return "no error"


def test_second_order_gradients_here():
    results = check_all()
    assert results == {name: True for name in results}, results


def test_second_order_gradients_of_the_python_formulas():
    code = (
        "import json, sys, warnings\n"
        "warnings.simplefilter('ignore', RuntimeWarning)  # 'extension unavailable'\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "import test_double_backward as t\n"
        "from aae_fast import _backend\n"
        "print(json.dumps({'autograd': _backend.autograd_backend('linear_act'), **t.check_all()}))\n"
    )
    env = dict(os.environ, AAE_FAST_DISABLE_EXT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads(res.stdout.strip().splitlines()[-1])
    assert results.pop("autograd") == "python"
    assert results == {name: True for name in results}, results


def test_the_first_order_path_is_unchanged():
    """Without create_graph the backward still calls the backward op (the fused kernel)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.__name__)
            return func(*args, **(kwargs or {}))

    fn, inputs = cases()["linear_act_tanh"]
    y = fn(*inputs)
    with Record() as rec:
        y.sum().backward()
    assert "linear_act_backward.default" in rec.names


def test_gradient_penalty_on_a_fused_discriminator_matches_eager():
    """The use case: a WGAN-GP style penalty, ||d D(z) / dz||^2, through fused layers and the
    adversarial loss, against the same network in eager torch."""
    g = torch.Generator().manual_seed(0)
    w1, b1 = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    w2, b2 = torch.randn(1, 6, generator=g, dtype=torch.float64), torch.randn(1, generator=g, dtype=torch.float64)
    z0 = torch.randn(9, 3, generator=g, dtype=torch.float64)

    def penalty(fused: bool):
        params = [t.clone().requires_grad_() for t in (w1, b1, w2, b2)]
        z = z0.clone().requires_grad_()
        if fused:
            h = af.ops.linear_act(z, params[0], params[1], "leaky_relu", 0.2)
            loss = af.ops.adversarial_g_loss(af.ops.linear_act(h, params[2], params[3], "identity"))
        else:
            h = torch.nn.functional.leaky_relu(torch.nn.functional.linear(z, params[0], params[1]), 0.2)
            logits = torch.nn.functional.linear(h, params[2], params[3])
            loss = torch.nn.functional.softplus(-logits).mean()
        (grad_z,) = torch.autograd.grad(loss, z, create_graph=True)
        grad_z.square().sum().backward()
        return [p.grad for p in params]

    for fused_grad, eager_grad in zip(penalty(True), penalty(False)):
        assert fused_grad is not None
        torch.testing.assert_close(fused_grad, eager_grad, rtol=1e-10, atol=1e-12)


def test_mmd_first_order_still_works():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: af.ops.mmd(x, y), (x,))
