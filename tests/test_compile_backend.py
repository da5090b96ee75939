"""torch.compile(backend="aae_fast") (issue 10, route 2): the FX-graph rewrite onto aae_fast's fused
ops computes what the user's graph computes (outputs, gradients, 20 training steps of a plain
user-written AAE), rewrites what it claims to (the ops are counted in the graph handed to the inner
backend, so these tests fail if nothing is rewritten), and leaves what it does not understand as it
was.

Most graphs go to the "aot_eager" inner backend (AOTAutograd without code generation: quick to
compile); one test runs the default inner backend, inductor.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

import aae_fast  # noqa: F401  (registers the backend)
from aae_fast import compile_backend as cb

_BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))

import user_aae  # noqa: E402  (benchmarks/user_aae.py)

FP32 = {"rtol": 1e-4, "atol": 1e-5}  # the tolerance for training runs
EXACT_ISH = {"rtol": 1e-5, "atol": 1e-6}  # one forward / backward in fp32
STEPS = 20


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny graphs: one intra-op thread (a second OpenMP thread on a shared 2-core machine only
    waits at barriers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    cb.clear_reports()
    yield
    torch._dynamo.reset()


class Capture:
    """An inner backend that records the aae_fast ops of each graph it gets, then runs aot_eager."""

    def __init__(self, inner: str = "aot_eager") -> None:
        self.inner = torch._dynamo.lookup_backend(inner)
        self.graphs: list[list[str]] = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(
            [
                n.target.name()
                for n in gm.graph.nodes
                if n.op == "call_function" and getattr(n.target, "namespace", None) == "aae_fast"
            ]
        )
        return self.inner(gm, example_inputs)

    def ops(self) -> list[str]:
        return [op for graph in self.graphs for op in graph]


def compiled(fn, capture: Capture | None = None, **options):
    options.setdefault("inner", capture if capture is not None else "aot_eager")
    return torch.compile(fn, backend="aae_fast", options=options, fullgraph=True)


def assert_close(actual, expected, what, **tol):
    torch.testing.assert_close(actual, expected, **(tol or EXACT_ISH), msg=lambda m: f"{what}: {m}")


def run(fn, module: nn.Module, inputs: list[torch.Tensor], grad_seed: int = 0):
    """fn(*inputs) and the gradients of a random projection of it w.r.t. inputs and parameters."""
    module.zero_grad(set_to_none=True)
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    g = torch.Generator().manual_seed(grad_seed)
    (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    return out.detach(), [t.grad for t in inputs], grads


def assert_same_run(actual, expected, **tol):
    (y, gx, gp), (y_ref, gx_ref, gp_ref) = actual, expected
    assert y.dtype == y_ref.dtype
    assert_close(y, y_ref, "output", **tol)
    for i, (a, e) in enumerate(zip(gx, gx_ref, strict=True)):
        assert_close(a, e, f"gradient of input {i}", **tol)
    assert gp.keys() == gp_ref.keys()
    for name, grad in gp_ref.items():
        assert (gp[name] is None) == (grad is None), name
        if grad is not None:
            assert_close(gp[name], grad, f"gradient of {name}", **tol)


def test_registered_on_import():
    assert "aae_fast" in torch._dynamo.list_backends(exclude_tags=())
    assert torch._dynamo.lookup_backend("aae_fast") is cb.aae_fast_backend


_REGISTRATION_SCRIPT = """
import sys
import torch
import torch.nn.functional as F
if {dynamo_first}:
    import torch._dynamo
import aae_fast
lazy = "torch._dynamo" not in sys.modules
w, b, x = torch.randn(3, 4), torch.randn(3), torch.randn(2, 4)
f = torch.compile(lambda x: torch.sigmoid(F.linear(x, w, b)), backend="aae_fast",
                  options={{"inner": "eager"}})
assert torch.allclose(f(x), torch.sigmoid(F.linear(x, w, b)))
assert aae_fast.compile_backend.last_report().count("linear_act") == 1
print("lazy" if lazy else "eager")
"""


@pytest.mark.parametrize("dynamo_first", [False, True])
def test_registration_in_a_fresh_process(dynamo_first):
    """``import aae_fast`` does not import torch._dynamo (seconds of import time); the backend is
    registered when torch._dynamo is imported later, by torch.compile, or at once if it was
    imported before."""
    script = _REGISTRATION_SCRIPT.format(dynamo_first=dynamo_first)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    expected = "eager" if dynamo_first else "lazy"
    assert done.stdout.split()[-1] == expected, (
        "import aae_fast imported torch._dynamo: some module of the package imports it at import "
        "time, which costs seconds; import it inside the function that needs it"
    )


# ------------------------------------------------------------------------------------------------
# Linear + activation, every spelling the user may write.

ACTIVATIONS = {
    # name: (apply, fused op's activation or None: left as it is)
    "torch.relu": (torch.relu, "relu"),
    "F.relu": (F.relu, "relu"),
    "F.relu(inplace)": (lambda t: F.relu(t, inplace=True), "relu"),
    "nn.ReLU(inplace)": (nn.ReLU(inplace=True), "relu"),
    ".relu()": (lambda t: t.relu(), "relu"),
    ".relu_()": (lambda t: t.relu_(), "relu"),
    "F.leaky_relu": (F.leaky_relu, "leaky_relu"),
    "F.leaky_relu(0.2)": (lambda t: F.leaky_relu(t, negative_slope=0.2), "leaky_relu"),
    "nn.LeakyReLU(0)": (nn.LeakyReLU(0.0), "leaky_relu"),
    "torch.sigmoid": (torch.sigmoid, "sigmoid"),
    "nn.Sigmoid": (nn.Sigmoid(), "sigmoid"),
    ".sigmoid()": (lambda t: t.sigmoid(), "sigmoid"),
    "torch.tanh": (torch.tanh, "tanh"),
    "F.tanh": (F.tanh, "tanh"),
    "nn.Tanh": (nn.Tanh(), "tanh"),
    # Not fused:
    "identity": (lambda t: t, None),
    "F.gelu": (F.gelu, None),
    "nn.SiLU": (nn.SiLU(), None),
    "leaky_relu(-0.1)": (lambda t: F.leaky_relu(t, -0.1), None),
}
FUSED = sorted(k for k, (_, act) in ACTIVATIONS.items() if act)


class MLP(nn.Module):
    """Linears with the given activations applied in forward (functional, method or module)."""

    def __init__(self, widths, acts, bias) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=bias) for a, b in zip(widths[:-1], widths[1:])
        )
        self.acts = list(acts)

    def forward(self, x):
        for layer, act in zip(self.layers, self.acts):
            x = ACTIVATIONS[act][0](layer(x))
        return x

    def expected_ops(self) -> int:
        fused = [ACTIVATIONS[a][1] for a in self.acts]
        # A leaky_relu whose output the graph returns stays unfused: the caller may modify the
        # output in place, and the fused op saves it for the backward (leaky_relu its input).
        last_kept = bool(fused) and fused[-1] == "leaky_relu"
        return sum(1 for act in fused if act) - last_kept


@pytest.mark.parametrize("bias", [True, False])
def test_every_activation_spelling_is_fused_and_exact(bias):
    names = list(ACTIVATIONS)
    torch.manual_seed(1)
    widths = [7] + [5 + i % 4 for i in range(len(names))]
    model = MLP(widths, names, bias)
    capture = Capture()
    x = torch.randn(6, 7)
    actual = run(compiled(model, capture), model, [x])
    expected = run(model, model, [x])
    assert_same_run(actual, expected)
    assert capture.ops() == ["aae_fast::linear_act"] * len(FUSED)
    report = cb.last_report()
    labels = [r.op for r in report.rewrites]
    assert labels.count("linear_act(relu)") == 6
    assert [op for op in labels if "leaky" in op] == [
        "linear_act(leaky_relu, 0.01)", "linear_act(leaky_relu, 0.2)", "linear_act(leaky_relu, 0.0)"
    ]
    assert len(report.skipped) == len(names) - len(FUSED)


@st.composite
def mlp_specs(draw):
    depth = draw(st.integers(1, 3))
    return {
        "widths": draw(st.lists(st.integers(1, 12), min_size=depth + 1, max_size=depth + 1)),
        "acts": draw(st.lists(st.sampled_from(list(ACTIVATIONS)), min_size=depth, max_size=depth)),
        "bias": draw(st.booleans()),
        "batch": draw(st.integers(1, 6)),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=6, deadline=None, database=None)
@given(spec=mlp_specs())
@example(spec={"widths": [1, 1], "acts": ["F.leaky_relu"], "bias": False, "batch": 1, "seed": 0})
def test_random_mlps_compute_the_same_outputs_and_gradients(spec):
    torch._dynamo.reset()
    torch.manual_seed(spec["seed"])
    model = MLP(spec["widths"], spec["acts"], spec["bias"])
    capture = Capture()
    x = torch.randn(spec["batch"], spec["widths"][0])
    actual = run(compiled(model, capture), model, [x], grad_seed=spec["seed"])
    expected = run(model, model, [x], grad_seed=spec["seed"])
    assert_same_run(actual, expected)
    assert capture.ops().count("aae_fast::linear_act") == model.expected_ops()


# ------------------------------------------------------------------------------------------------
# Losses.


def losses(o, x, r, f):
    """The AAE's three losses as a user writes them, and their sum."""
    rec = F.binary_cross_entropy_with_logits(o, x, reduction="sum") / x.shape[0]
    d = F.binary_cross_entropy_with_logits(
        r, torch.ones_like(r)
    ) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    g = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    return torch.stack([rec, d, g])


def other_spellings(o, x, r, f):
    """Equivalent spellings: operands swapped, other fills, reduction="none" chains, mse."""
    b = o.shape[0]
    rec1 = F.binary_cross_entropy_with_logits(o, x, reduction="none").sum(dim=1).mean()
    rec2 = F.mse_loss(o, x, reduction="sum") / b
    rec3 = F.mse_loss(o, x, reduction="none").sum() / float(b)
    d = F.binary_cross_entropy_with_logits(
        f, torch.full_like(f, 0.0), reduction="mean"
    ) + F.binary_cross_entropy_with_logits(r, r.new_ones(r.shape))
    g = F.binary_cross_entropy_with_logits(f, torch.ones(f.shape[0], 1))
    return torch.stack([rec1, rec2, rec3, d, g])


@pytest.mark.parametrize(
    "fn, expected",
    [
        (losses, ["reconstruction_loss", "adversarial_d_loss", "adversarial_g_loss"]),
        (
            other_spellings,
            ["reconstruction_loss"] * 3 + ["adversarial_d_loss", "adversarial_g_loss"],
        ),
    ],
    ids=["user_spelling", "other_spellings"],
)
def test_losses_are_rewritten_and_exact(fn, expected):
    g = torch.Generator().manual_seed(2)
    inputs = [torch.randn(5, 9, generator=g), torch.rand(5, 9, generator=g),
              torch.randn(5, 1, generator=g) * 3, torch.randn(5, 1, generator=g) * 3]
    capture = Capture()
    actual = run(compiled(fn, capture), nn.Module(), inputs)
    reference = run(fn, nn.Module(), inputs)
    assert_same_run(actual, reference)
    assert sorted(capture.ops()) == sorted(f"aae_fast::{op}" for op in expected)


def test_half_precision_losses_keep_their_dtype():
    """The fused losses return float32 for bfloat16 inputs; a cast keeps the graph's dtype."""
    g = torch.Generator().manual_seed(3)
    inputs = [
        t.bfloat16()
        for t in (torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g),
                  torch.randn(4, 1, generator=g), torch.randn(4, 1, generator=g))
    ]
    capture = Capture()
    actual = run(compiled(losses, capture), nn.Module(), inputs)
    expected = run(losses, nn.Module(), inputs)
    assert actual[0].dtype == torch.bfloat16
    assert_same_run(actual, expected, rtol=2e-2, atol=2e-2)
    assert len(capture.ops()) == 3


def test_symbolic_batch_size():
    """With a dynamic batch, `/ x.shape[0]` is the same symbol and is rewritten; a hard-coded
    divisor is not provably the batch size and is left alone."""

    def fn(o, x):
        by_shape = F.binary_cross_entropy_with_logits(o, x, reduction="sum") / x.shape[0]
        hard_coded = F.mse_loss(o, x, reduction="sum") / 4
        return torch.stack([by_shape, hard_coded])

    capture = Capture()
    c = torch.compile(fn, backend="aae_fast", options={"inner": capture}, dynamic=True)
    for b in (4, 6):
        o, x = torch.randn(b, 3), torch.rand(b, 3)
        assert_close(c(o, x), fn(o, x), f"batch {b}")
    assert capture.ops() == ["aae_fast::reconstruction_loss"]
    assert any("not provably the batch size" in s.reason for s in cb.last_report().skipped)


# ------------------------------------------------------------------------------------------------
# What the backend does not understand is left as it was.


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm = nn.Linear(6, 8), nn.LayerNorm(8)
        self.fc2, self.fc3, self.fc4 = nn.Linear(8, 8), nn.Linear(8, 5), nn.Linear(5, 5)
        self.fc5 = nn.Linear(5, 4)

    def forward(self, x, y3):
        h = torch.relu(self.norm(self.fc1(x)))  # LayerNorm between Linear and activation
        h = F.gelu(self.fc2(h))  # no fused GELU
        z = self.fc3(h)
        h = torch.relu(z) + z  # the Linear's output is used twice
        h = torch.tanh(self.fc4(y3)).sum(1) + h  # a 3-D input
        out = self.fc5(h)
        return torch.stack([
            F.binary_cross_entropy(torch.sigmoid(out), y3[:, 0, :4].sigmoid()),  # clamps its log
            F.binary_cross_entropy_with_logits(
                out, torch.ones_like(out), pos_weight=torch.full((4,), 2.0)
            ),
            F.binary_cross_entropy_with_logits(out, y3[:, 1, :4].sigmoid()),  # labels from outside
            F.binary_cross_entropy_with_logits(out, torch.full_like(out, 0.9)),  # smoothed labels
            F.binary_cross_entropy_with_logits(out, torch.zeros_like(out)),  # zeros alone
            F.binary_cross_entropy_with_logits(out, x[:, :4].sigmoid(), reduction="sum") / 3,
            F.mse_loss(out, x[:, :4]),  # a mean over all elements
            F.mse_loss(out, x[:, :4], reduction="sum") / x.shape[0] ** 2,
        ]).sum(0) * (1 + out.mean())


def test_unsupported_graphs_are_left_intact_and_still_correct():
    torch.manual_seed(4)
    model = Unsupported()
    inputs = [torch.randn(5, 6), torch.randn(5, 3, 5)]
    capture = Capture()
    actual = run(compiled(model, capture), model, inputs)
    expected = run(model, model, inputs)
    assert_same_run(actual, expected)
    assert capture.ops() == [], "something in this graph was rewritten"
    report = cb.last_report()
    assert report.count() == 0
    reasons = " | ".join(s.reason for s in report.skipped)
    for fragment in ("not an activation", "2 users", "3-D", "not provably the batch size",
                     "pos_weight", "not a tensor of ones or zeros", "zeros alone"):
        assert fragment in reasons, fragment


def test_autocast_region_is_left_alone():
    """Under CPU autocast F.linear returns bfloat16 for float32 inputs; the fused op would not:
    such a linear is kept."""
    torch.manual_seed(5)
    model = MLP([6, 5, 4], ["torch.relu", "torch.tanh"], True)

    def fn(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    capture = Capture()
    x = torch.randn(3, 6)
    actual = run(compiled(fn, capture), model, [x])
    expected = run(fn, model, [x])
    assert_same_run(actual, expected)
    assert capture.ops() == []
    assert any("autocast" in s.reason for s in cb.last_report().skipped)


def mutates_linear_input(x, w, b):
    h = F.linear(x, w, b)
    x.mul_(2)  # between the linear and its activation: the fused op must read x before
    return torch.relu(h)


def smooths_labels_in_place(d):
    t = torch.ones_like(d)
    t.mul_(0.9)  # the labels are no longer ones
    return F.binary_cross_entropy_with_logits(d, t)


def mutates_between_bce_terms(r, f):
    a = F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
    r.add_(5.0)
    return a + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))


def unrelated_in_place_op_between_bce_terms(r, f):
    a = F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
    h = (f * 2).relu_()  # a fresh tensor modified in place: r and f are untouched
    return a + F.binary_cross_entropy_with_logits(h, torch.zeros_like(h))


def mutates_after_the_loss(o, x):
    loss = F.binary_cross_entropy_with_logits(o, x, reduction="sum")
    o.zero_()
    return loss / o.shape[0]


def grad_mode_inside_the_pattern(x, w, b):
    h = F.linear(x, w, b)
    with torch.no_grad():  # eager: the activation's output does not require grad
        return torch.relu(h)


def positional_inplace_between_bce_terms(r, f):
    loss_real = F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
    features = F.leaky_relu(r, 0.2, True)  # nn.LeakyReLU(0.2, inplace=True): inplace positional
    loss = loss_real + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    return loss + 0.0 * features.sum()


@pytest.mark.parametrize(
    "fn, shapes, rewrites",
    [
        (mutates_linear_input, [(3, 4), (5, 4), (5,)], ["linear_act"]),
        (positional_inplace_between_bce_terms, [(3, 1), (3, 1)], ["adversarial_g_loss"]),
        (grad_mode_inside_the_pattern, [(3, 4), (5, 4), (5,)], []),
        (smooths_labels_in_place, [(3, 1)], []),
        (mutates_between_bce_terms, [(3, 1), (3, 1)], ["adversarial_g_loss"]),
        (unrelated_in_place_op_between_bce_terms, [(3, 1), (3, 1)], ["adversarial_d_loss"]),
        (mutates_after_the_loss, [(3, 4), (3, 4)], ["reconstruction_loss"]),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_in_place_ops_and_grad_mode_inside_a_pattern(fn, shapes, rewrites):
    """The op must compute what the pattern computed where it stood: it reads each input where
    the pattern first read it (so later in-place changes do not reach it); a pattern that would
    read an input again after an in-place change, or that spans a grad-mode change, is kept."""
    g = torch.Generator().manual_seed(8)
    inputs = [torch.rand(s, generator=g) * 2 - 1 for s in shapes]
    if fn is grad_mode_inside_the_pattern:
        inputs[1].requires_grad_()
    actual = compiled(fn)(*[t.clone() for t in inputs])
    expected = fn(*[t.clone() for t in inputs])
    assert_close(actual, expected, fn.__name__)
    assert actual.requires_grad == expected.requires_grad
    assert [r.pattern for r in cb.last_report().rewrites] == rewrites


def test_a_broadcasting_bias_is_left_to_f_linear():
    def fn(x, w, b):
        return torch.relu(F.linear(x, w, b))

    inputs = [torch.randn(4, 3), torch.randn(5, 3), torch.randn(1)]  # bias [1] over 5 outputs
    assert_close(compiled(fn)(*inputs), fn(*inputs), "output")
    assert cb.last_report().count() == 0
    assert "broadcasts" in cb.last_report().skipped[0].reason


def test_leaky_relu_output_changed_in_place_later_keeps_its_linear():
    """leaky_relu saves its input for the backward, linear_act its output: an in-place change of
    the output afterwards (here an in-place dropout) is fine in eager and would break the op's
    backward."""
    torch.manual_seed(9)
    net = nn.Sequential(nn.Linear(3, 5), nn.LeakyReLU(0.2), nn.Dropout(0.3, inplace=True),
                        nn.Linear(5, 1))
    x = torch.randn(4, 3)
    torch.manual_seed(0)
    actual = run(compiled(net), net, [x])
    assert cb.last_report().count("linear_act") == 0
    assert "modified in place later" in cb.last_report().skipped[0].reason
    torch._dynamo.reset()
    torch.manual_seed(0)
    expected = run(compiled(net, patterns=()), net, [x])  # the same dropout mask
    assert_same_run(actual, expected)


def test_a_returned_leaky_relu_output_keeps_its_linear():
    """The caller may modify a graph's output in place before the backward (fine after
    leaky_relu, which saves its input; not after linear_act, which saves its output)."""
    torch.manual_seed(10)
    lin = nn.Linear(3, 4)

    def fn(x):
        return F.leaky_relu(lin(x), 0.2)

    x = torch.randn(5, 3)
    grads = []
    for f in (compiled(fn), fn):
        lin.zero_grad(set_to_none=True)
        out = f(x)
        out.mul_(2.0)
        out.sum().backward()
        grads.append((lin.weight.grad, lin.bias.grad))
    assert "returned" in cb.last_report().skipped[0].reason
    for actual, expected in zip(*grads, strict=True):
        assert_close(actual, expected, "gradient")


# ------------------------------------------------------------------------------------------------
# Gaussian sampling: the reparameterisation trick and prior sampling. The rewritten graph draws its
# noise from aae_fast's Philox stream, seeded from torch's default generator, so under one seed
# it computes exactly what the aae_fast op computes when called directly (inductor, too, draws
# other numbers than eager: neither matches the eager graph's randn).


def reparam_spellings():
    def half_mul(mu, lv):
        std = torch.exp(0.5 * lv)
        eps = torch.randn_like(std)
        return mu + eps * std

    def half_div_method(mu, lv):
        return (lv / 2).exp() * torch.randn_like(mu) + mu

    def mul_method(mu, lv):
        return torch.add(mu, torch.mul(torch.randn(mu.shape[0], mu.shape[1]), lv.mul(0.5).exp()))

    def shape_tuple(mu, lv):
        return mu + torch.exp(lv * 0.5) * torch.randn(mu.shape, dtype=mu.dtype)

    return [half_mul, half_div_method, mul_method, shape_tuple]


@pytest.mark.parametrize("fn", reparam_spellings(), ids=lambda f: f.__name__)
def test_reparameterization_is_rewritten_and_draws_the_fused_ops_numbers(fn):
    g = torch.Generator().manual_seed(11)
    mu, lv = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    c = compiled(fn)
    torch.manual_seed(3)
    actual = run(c, nn.Module(), [mu, lv])
    assert [r.op for r in cb.last_report().rewrites] == ["gaussian_reparameterize"]
    torch.manual_seed(3)
    expected = run(lambda m, v: aae_fast.ops.gaussian_reparameterize(m, v), nn.Module(), [mu, lv])
    assert_same_run(actual, expected, rtol=0, atol=0)
    # The gradients the op's formula gives (dz/dmu = 1, dz/dlogvar = (z - mu) / 2), and a draw
    # that differs from the eager graph's randn under the same seed.
    torch.manual_seed(3)
    z, (gmu, glv), _ = run(c, nn.Module(), [mu, lv], grad_seed=5)
    upstream = torch.randn(6, 5, generator=torch.Generator().manual_seed(5))
    assert_close(gmu, upstream, "grad mu")
    assert_close(glv, 0.5 * upstream * (z - mu), "grad logvar")
    torch.manual_seed(3)
    assert not torch.equal(z, fn(mu, lv))


def test_reparameterization_with_a_log_std():
    """mu + exp(s) * eps: logvar = 2 s, and the gradient reaches s through it."""

    def fn(mu, log_std):
        return mu + log_std.exp() * torch.randn_like(mu)

    g = torch.Generator().manual_seed(12)
    mu, s = (torch.randn(4, 3, dtype=torch.float64, generator=g) for _ in range(2))
    torch.manual_seed(8)
    z, (gmu, gs), _ = run(compiled(fn), nn.Module(), [mu, s])
    assert [r.op for r in cb.last_report().rewrites] == ["gaussian_reparameterize(2 * log std)"]
    assert z.dtype == torch.float64
    torch.manual_seed(8)
    assert torch.equal(z, aae_fast.ops.gaussian_reparameterize(mu, 2 * s))
    upstream = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert_close(gs, upstream * (z - mu), "grad log std")


def test_reparameterization_statistics_under_inductor():
    """The default inner backend: z - mu over exp(logvar / 2) is a standard normal."""
    torch.manual_seed(2)
    mu, lv = torch.randn(4000, 5), torch.randn(4000, 5)
    c = torch.compile(reparam_spellings()[0], backend="aae_fast", fullgraph=True)
    eps = (c(mu, lv) - mu) / torch.exp(0.5 * lv)
    assert cb.last_report().count("reparameterize") == 1
    n = eps.numel()
    assert abs(eps.mean().item()) < 5 / n**0.5
    assert abs(eps.var().item() - 1) < 5 * (2 / n) ** 0.5
    assert not torch.equal(c(mu, lv), c(mu, lv))  # fresh noise every call


def mixture_uniform(means, n: int = 7):
    idx = torch.randint(0, means.shape[0], (n,))
    return means[idx] + 0.5 * torch.randn(n, means.shape[1])


def mixture_high_only(means, n: int = 7):
    idx = torch.randint(means.shape[0], (n,))
    return torch.randn(n, means.shape[1]) * 0.5 + means.index_select(0, idx)


@pytest.mark.parametrize("fn", [mixture_uniform, mixture_high_only], ids=lambda f: f.__name__)
def test_mixture_prior_sampling_is_rewritten(fn):
    means = torch.randn(5, 3)
    torch.manual_seed(4)
    actual = compiled(fn)(means)
    report = cb.last_report()
    assert [r.op for r in report.rewrites] == ["sample_gaussian_mixture"]
    assert "idx" in " ".join(report.rewrites[0].nodes)  # the randint went with it
    torch.manual_seed(4)
    expected = aae_fast.ops.sample_gaussian_mixture(
        7, means, torch.full((5, 3), 0.5), torch.arange(1, 6) / 5.0
    )
    assert torch.equal(actual, expected)


def test_labelled_and_weighted_mixtures_keep_their_component_draw():
    """Components drawn by multinomial or given from outside stay as they are and go to the
    sampler as labels: each row is exactly means[label] + scale * eps for the op's eps."""

    def fn(means, scale, weights, labels):
        picked = torch.multinomial(weights, 6, replacement=True)
        a = means[picked] + scale * torch.randn(6, 3)
        b = means[labels] + torch.randn(6, 3)
        return a, b, picked

    means, scale = torch.randn(4, 3), torch.tensor([0.5, 1.0, 2.0])
    weights, labels = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0, 3, 3, 1, 2, 0])
    torch.manual_seed(9)
    a, b, picked = compiled(fn)(means, scale, weights, labels)
    assert [r.op for r in cb.last_report().rewrites] == ["sample_gaussian_mixture(labels)"] * 2
    torch.manual_seed(9)
    picked_ref = torch.multinomial(weights, 6, replacement=True)
    cum = torch.arange(1, 5) / 4.0
    a_ref = aae_fast.ops.sample_gaussian_mixture(6, means, scale.expand(4, 3).contiguous(), cum,
                                                 picked_ref)
    b_ref = aae_fast.ops.sample_gaussian_mixture(6, means, torch.ones(4, 3), cum, labels)
    assert torch.equal(picked, picked_ref) and torch.equal(a, a_ref) and torch.equal(b, b_ref)


def test_gaussian_prior_sampling_is_rewritten():
    def fn(mean, std):
        return mean + std * torch.randn(2000, 3)

    mean, std = torch.tensor([1.0, -2.0, 0.0]), torch.tensor([0.5, 1.0, 3.0])
    z = compiled(fn)(mean, std)
    assert [r.op for r in cb.last_report().rewrites] == ["sample_gaussian_mixture"]
    eps = (z - mean) / std
    assert abs(eps.mean().item()) < 5 / eps.numel() ** 0.5
    assert abs(eps.var().item() - 1) < 5 * (2 / eps.numel()) ** 0.5


def test_prior_sampling_in_half_precision_keeps_the_dtype():
    means = torch.randn(3, 4, dtype=torch.bfloat16)
    compiled(mixture_uniform)(means)
    assert cb.last_report().count("prior_sample") == 0  # randn is float32 here: dtypes differ

    def fn(m):
        idx = torch.randint(0, 3, (7,))
        return m[idx] + torch.randn(7, 4, dtype=torch.bfloat16)

    z = compiled(fn)(means)
    assert cb.last_report().count("prior_sample") == 1 and z.dtype == torch.bfloat16


class SamplingNotRewritten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.means = nn.Parameter(torch.randn(4, 3))  # learned: the sampler has no gradient

    def forward(self, mu, lv, sigma):
        eps = torch.randn_like(mu)
        a = mu + torch.exp(0.5 * lv) * eps + eps  # the noise is used twice
        b = mu + torch.exp(0.5 * lv[0]) * torch.randn_like(mu)  # broadcast log-variance
        c = mu + torch.sqrt(sigma) * torch.randn_like(mu)  # not exp
        idx = torch.randint(0, 4, (5,))
        d = self.means[idx] + 0.1 * torch.randn(5, 3)
        e = sigma.mean(0) + -1.0 * torch.randn(5, 3)  # a negative scale
        return torch.cat([a, b, c]), torch.cat([d, e])


def test_sampling_patterns_left_alone_compute_what_eager_computes():
    model = SamplingNotRewritten()
    g = torch.Generator().manual_seed(3)
    inputs = [torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g),
              torch.rand(6, 3, generator=g)]
    torch.manual_seed(0)
    actual = compiled(model, patterns=("reparameterize", "prior_sample"))(*inputs)
    report = cb.last_report()
    torch._dynamo.reset()
    torch.manual_seed(0)
    expected = compiled(model, patterns=())(*inputs)  # the same graph, no rewrite
    for a, e in zip(actual, expected, strict=True):
        assert torch.equal(a, e)  # the same randn draws: nothing was rewritten
    assert report.count("reparameterize") == 0 and report.count("prior_sample") == 0
    reasons = " | ".join(s.reason for s in report.skipped)
    for fragment in ("the noise", "not 2-D", "require grad", "finite constant >= 0"):
        assert fragment in reasons, fragment


def clamps_the_half_log_variance(mu, lv):
    half = 0.5 * lv
    half.clamp_(max=0.0)  # caps the std at 1: the op would recompute exp(lv / 2) without it
    return mu + torch.exp(half) * torch.randn_like(mu)


def shifts_the_std(mu, lv):
    std = torch.exp(0.5 * lv.detach())  # detached: the in-place add is legal under autograd
    std.add_(10.0)
    return mu + std * torch.randn_like(mu)


def the_noise_term_is_mu(mu, lv):
    p = torch.exp(lv) * torch.randn_like(lv)
    return p + p + mu


def a_gaussian_twice(mu, lv):
    p = 0.5 * torch.randn(1, 3)
    return mu + (p + p)


def transposed_noise(mu, lv):
    return mu + torch.randn_like(lv.t()).t().reshape(mu.shape)


def no_columns(mu, lv):
    return mu + torch.randn(6, 0).sum()


def modifies_logvar_later(mu, lv):
    lv = lv * 1.0
    z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
    lv.mul_(2)  # the fused op would have saved lv for its backward
    return z


AFFINE_SAMPLING = ("reparameterize", "prior_sample")


@pytest.mark.parametrize("fn, patterns", [
    (clamps_the_half_log_variance, AFFINE_SAMPLING),
    (shifts_the_std, AFFINE_SAMPLING),
    (the_noise_term_is_mu, AFFINE_SAMPLING),
    (a_gaussian_twice, AFFINE_SAMPLING),
    (modifies_logvar_later, AFFINE_SAMPLING),
    (transposed_noise, ("standard_normal",)),
    (no_columns, ("standard_normal",)),
], ids=lambda v: getattr(v, "__name__", None) or "-".join(v))
def test_sampling_patterns_that_would_change_the_result_are_kept(fn, patterns):
    """Each of these would compute another distribution, shape or gradient if rewritten; compiled
    with the sampling patterns they draw exactly the numbers of the same graph compiled without.
    (Left alone, the affine patterns' randn is a bare standard normal: that pattern is kept out of
    their cases.)"""
    g = torch.Generator().manual_seed(2)
    mu, lv = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    torch.manual_seed(1)
    actual = run(compiled(fn, patterns=patterns), nn.Module(), [mu, lv])
    assert cb.last_report().count() == 0, cb.last_report()
    torch._dynamo.reset()
    torch.manual_seed(1)
    expected = run(compiled(fn, patterns=()), nn.Module(), [mu, lv])
    assert_same_run(actual, expected, rtol=0, atol=0)


def test_negative_labels_pick_rows_from_the_end_as_indexing_does():
    def fn(means, labels):
        return means[labels] + 0.001 * torch.randn(3, 1)

    means, labels = torch.tensor([[0.0], [10.0], [20.0]]), torch.tensor([-1, 0, -3])
    z = compiled(fn)(means, labels)
    assert cb.last_report().count("prior_sample") == 1
    torch.testing.assert_close(z, means[labels], rtol=0, atol=0.01)
    with pytest.raises(ValueError, match="labels must lie in"):
        compiled(fn)(means, torch.tensor([0, 3, 1]))


def _traced_with_fakes(fn, device, *shapes):
    """fn traced by fx with fake tensors of ``device`` recorded as Dynamo would (no GPU needed)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    gm = torch.fx.symbolic_trace(fn)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        inputs = [torch.empty(shape, device=device) for shape in shapes]
    FakeTensorProp(gm, mode).propagate(*inputs)
    return gm


@pytest.mark.parametrize("device, rewritten", [("cpu", 1), ("cuda", 0)])
def test_sampling_patterns_are_rewritten_on_the_cpu_only(device, rewritten):
    """On an H200 the three sampling rewrites ran slower than inductor's own sampling (0.64-0.76x),
    so a CUDA graph keeps torch's randn; the same graph on the CPU is rewritten."""

    def reparameterize(mu, logvar):
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def prior(loc):
        # index_select rather than loc[idx]: fake CUDA tensors cannot index on a CPU-only torch.
        idx = torch.randint(0, 10, (100,), device=loc.device)
        return loc.index_select(0, idx) + 0.5 * torch.randn(100, 8, device=loc.device)

    def standard_normal(z):
        return torch.randn_like(z)

    for fn, pattern, shapes in ((reparameterize, "reparameterize", [(6, 3), (6, 3)]),
                                (prior, "prior_sample", [(10, 8)]),
                                (standard_normal, "standard_normal", [(6, 3)])):
        gm = _traced_with_fakes(fn, device, *shapes)
        report = cb.rewrite_graph(gm)
        assert report.count(pattern) == rewritten, (pattern, report.rewrites, report.skipped)
        assert report.count() == rewritten, (pattern, report.rewrites)
    if device == "cuda":  # the two that would match say why they were left alone
        reasons = [s.reason for s in cb.rewrite_graph(
            _traced_with_fakes(reparameterize, device, (6, 3), (6, 3))).skipped]
        assert any("CPU only" in r for r in reasons), reasons


def test_bare_standard_normals_on_the_cpu_are_rewritten():
    """z_real = torch.randn_like(z_fake), the usual prior sample: the sampler (K = 1, loc 0, scale
    1) in its place, in the node's dtype; other ranks stay torch.randn."""

    def fn(z):
        return torch.randn_like(z), torch.randn(z.shape[0], 3, dtype=torch.float64), torch.randn(4)

    z = torch.zeros(5, 2)
    torch.manual_seed(6)
    real, other, flat = compiled(fn)(z)
    assert [r.op for r in cb.last_report().rewrites] == [
        "sample_gaussian_mixture(standard normal)"] * 2
    torch.manual_seed(6)
    expected_real = aae_fast.ops.sample_gaussian_mixture(
        5, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1), dtype=torch.float32)
    expected_other = aae_fast.ops.sample_gaussian_mixture(
        5, torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64),
        torch.ones(1, dtype=torch.float64), dtype=torch.float64)
    expected_flat = torch.randn(4)
    assert torch.equal(real, expected_real) and torch.equal(other, expected_other)
    assert torch.equal(flat, expected_flat)  # torch's own draw, after the two samplers' seeds
    torch._dynamo.reset()
    torch.manual_seed(6)
    kept = compiled(fn, patterns=("linear_act",))(z)
    torch.manual_seed(6)
    assert all(torch.equal(a, e) for a, e in zip(kept, fn(z), strict=True))


def test_sampling_rewrites_with_a_symbolic_batch_size():
    """dynamic=True: the sizes of the noise are SymInts; every family still rewrites, and a second
    batch size reuses the graph."""

    def fn(z, means, mean):
        prior = torch.randn_like(z)
        idx = torch.randint(0, means.shape[0], (z.shape[0],))
        mixture = means[idx] + 0.5 * torch.randn(z.shape[0], means.shape[1])
        gaussian = mean + torch.randn(z.shape[0], mean.shape[0])
        return prior, mixture, gaussian

    c = torch.compile(fn, backend="aae_fast", dynamic=True, fullgraph=True,
                      options={"inner": "aot_eager"})
    means, mean = torch.randn(4, 3), torch.randn(3)
    for batch in (5, 9):
        torch.manual_seed(batch)
        prior, mixture, gaussian = c(torch.zeros(batch, 2), means, mean)
        torch.manual_seed(batch)
        ones = torch.ones(1, 2)
        expected = aae_fast.ops.sample_gaussian_mixture(batch, ones * 0, ones, torch.ones(1))
        assert torch.equal(prior, expected) and mixture.shape == gaussian.shape == (batch, 3)
    assert len(cb.reports()) == 1  # one graph for both sizes
    assert sorted(r.pattern for r in cb.last_report().rewrites) == [
        "prior_sample", "prior_sample", "standard_normal"]


def test_gradient_penalty_through_a_rewritten_graph_with_the_eager_inner_backend():
    """create_graph=True through linear_act and the adversarial loss (AOTAutograd has no double
    backward; the eager inner backend runs the inserted ops, whose gradients are differentiable)."""
    torch.manual_seed(13)
    model = MLP([5, 4, 1], ["torch.tanh", "torch.sigmoid"], True)

    def critic_loss(x):
        out = model(x)
        return F.binary_cross_entropy_with_logits(out, torch.ones_like(out))

    def penalised(fn, x):
        model.zero_grad(set_to_none=True)
        x = x.detach().clone().requires_grad_()
        (gx,) = torch.autograd.grad(fn(x), x, create_graph=True)
        gx.pow(2).sum().backward()
        return {n: p.grad for n, p in model.named_parameters()}

    x = torch.randn(6, 5)
    actual = penalised(compiled(critic_loss, inner="eager"), x)
    assert cb.last_report().count() == 3  # two linear_act, one adversarial_g_loss
    expected = penalised(critic_loss, x)
    for name, grad in expected.items():
        assert_close(actual[name], grad, f"penalty gradient of {name}")


# ------------------------------------------------------------------------------------------------
# The plain user-written AAE (benchmarks/user_aae.py), 20 training steps.


@pytest.mark.parametrize("route", ["phases", "networks"])
def test_user_written_aae_trains_the_same_compiled(route):
    """"phases": each phase's networks and loss in one compiled graph (every pattern); "networks":
    the three networks' forwards compiled in place, the user's train_step unchanged (as
    benchmarks/bench_accelerate.py does)."""
    torch.manual_seed(0)
    eager = user_aae.UserAAE(input_dim=20, hidden=(24, 16), latent_dim=3, disc_hidden=(16, 12))
    model = copy.deepcopy(eager)
    opts = user_aae.make_optimizers(model)
    capture = Capture()
    if route == "phases":
        phases = {name: compiled(fn, capture) for name, fn in user_aae.PHASES.items()}

        def step(x):
            return user_aae.train_step(model, opts, x, phases)
    else:
        for net in (model.encoder, model.decoder, model.discriminator):
            net.forward = compiled(net.forward, capture)

        def step(x):
            return user_aae.train_step(model, opts, x)

    g = torch.Generator().manual_seed(3)
    data = [torch.rand(10, 20, generator=g) for _ in range(STEPS)]
    torch.manual_seed(1)
    eager_opts = user_aae.make_optimizers(eager)
    expected = [user_aae.train_step(eager, eager_opts, x) for x in data]
    torch.manual_seed(1)
    actual = [step(x) for x in data]

    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        for key in e:
            assert_close(a[key], e[key], f"step {i} loss {key!r}", **FP32)
    params = dict(eager.named_parameters())
    for key, p in model.named_parameters():
        assert_close(p, params[key], f"{key} after {STEPS} steps", **FP32)

    ops = capture.ops()
    # 2 hidden layers per network; the discriminator runs twice in the discriminator phase.
    if route == "phases":
        assert ops.count("aae_fast::linear_act") == 4 + 4 + 4  # rec, disc, gen graphs
        for loss in ("reconstruction_loss", "adversarial_d_loss", "adversarial_g_loss"):
            assert ops.count(f"aae_fast::{loss}") == 1, loss
    else:
        assert set(ops) == {"aae_fast::linear_act"}
        assert len(capture.graphs) >= 3
        assert all(graph == ["aae_fast::linear_act"] * 2 for graph in capture.graphs)


def test_inductor_inner_backend():
    """The default inner backend: inductor compiles the rewritten graph around the custom ops."""
    torch.manual_seed(6)
    model = MLP([9, 7, 5], ["F.relu", "torch.sigmoid"], True)

    def fn(x, r):
        o = model(x)
        return torch.stack([
            F.binary_cross_entropy_with_logits(o, x[:, :5].sigmoid(), reduction="sum") / x.shape[0],
            F.binary_cross_entropy_with_logits(r, torch.ones_like(r)),
        ])

    c = torch.compile(fn, backend="aae_fast", fullgraph=True)
    inputs = [torch.randn(4, 9), torch.randn(4, 1)]
    actual = run(c, model, inputs)
    expected = run(fn, model, inputs)
    assert_same_run(actual, expected)
    assert cb.last_report().count("linear_act") == 2
    assert cb.last_report().count("reconstruction_loss") == 1
    assert cb.last_report().count("adversarial_g_loss") == 1


# ------------------------------------------------------------------------------------------------
# Options and the report.


def test_patterns_option_and_verbose_report(capsys):
    capture = Capture()
    g = torch.Generator().manual_seed(7)
    inputs = [torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g),
              torch.randn(3, 1, generator=g), torch.randn(3, 1, generator=g)]
    c = compiled(losses, capture, patterns=("adversarial_loss",), verbose=True)
    assert_close(c(*inputs), losses(*inputs), "losses")
    assert sorted(capture.ops()) == ["aae_fast::adversarial_d_loss", "aae_fast::adversarial_g_loss"]
    printed = capsys.readouterr().out
    assert "aae_fast backend, graph" in printed and "-> adversarial_d_loss" in printed
    assert str(cb.last_report()) in printed
    assert cb.reports()[-1] is cb.last_report()


@pytest.mark.parametrize(
    "options, error",
    [
        ({"patterns": ("linear_act", "gelu")}, "unknown patterns"),
        ({"inner": "aot_eager", "max_autotune": True}, "inductor settings"),
        ({"verbose": "yes"}, "verbose must be a bool"),
    ],
)
def test_bad_options_raise(options, error):
    c = torch.compile(torch.relu, backend="aae_fast", options=options)
    with pytest.raises(Exception, match=error):
        c(torch.randn(2, 2))


def test_rewrite_graph_without_metadata_changes_nothing():
    """A graph without Dynamo's fake values (symbolic_trace) is never rewritten."""

    def fn(x, w, b):
        return torch.relu(F.linear(x, w, b))

    gm = torch.fx.symbolic_trace(fn)
    before = str(gm.graph)
    report = cb.rewrite_graph(gm)
    assert report.count() == 0 and str(gm.graph) == before
    assert any("no tensor metadata" in s.reason for s in report.skipped)
