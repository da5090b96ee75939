"""af.accelerate (issue 10, route 1): a user's modules on the fused ops, computing the same function
with the same Parameters and state-dict keys, leaving what it cannot convert intact and reported.

The plain user-written AAE comes from benchmarks/user_aae.py (shared with the benchmark, and with
the torch.compile route, so that the code both check and time is one file); the reference variants'
constructor arguments and batches come from tests/models/twins.py.
"""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import aae_fast as af
import aae_fast.reference as ref
from aae_fast.accelerate import AbsorbedActivation, AccelerationReport
from aae_fast.nn import FusedLinear, FusedMLP

_TESTS = Path(__file__).resolve().parent
for _dir in (_TESTS.parent / "benchmarks", _TESTS / "models"):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

import twins  # noqa: E402  (tests/models/twins.py)
import user_aae  # noqa: E402  (benchmarks/user_aae.py)

FP32 = {"rtol": 1e-4, "atol": 1e-5}  # the tolerance for training runs
EXACT_ISH = {"rtol": 1e-5, "atol": 1e-5}  # one forward / backward in fp32
# Random modules run in float64: a LayerNorm over 1 or 2 features turns rounding noise into O(1)
# gradients (1 / sqrt(var + eps) with var ~ 0), so fp32 could not tell a bug from an unlucky draw.
FP64 = {"rtol": 1e-7, "atol": 1e-9}
HYPOTHESIS = settings(max_examples=30, deadline=None, database=None)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The modules here are tiny: one intra-op thread. On a shared 2-core machine a second OpenMP
    thread that loses its core makes every op wait at a barrier (steps measured 50x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_close(actual, expected, what, **tol):
    torch.testing.assert_close(actual, expected, **(tol or EXACT_ISH), msg=lambda m: f"{what}: {m}")


# ------------------------------------------------------------------------------------------------
# Random modules: depth 1-4, widths 1-40, every activation, bias on/off, unsupported modules mixed
# in.

ACTS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "none": None,
}
FUSABLE = {"relu", "leaky_relu", "sigmoid", "tanh"}


@st.composite
def module_specs(draw):
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 40), min_size=depth + 1, max_size=depth + 1))
    layers = [
        {
            "bias": draw(st.booleans()),
            "act": draw(st.sampled_from(sorted(ACTS))),
            "slope": draw(st.sampled_from([0.0, 0.01, 0.2])),
            "extra": draw(st.sampled_from([None, "dropout", "layernorm"])),
            "extra_first": draw(st.booleans()),  # the extra module between Linear and activation
        }
        for _ in range(depth)
    ]
    return {
        "widths": widths,
        "layers": layers,
        "wrapped": draw(st.booleans()),  # inside a custom module with a functional activation
        "inplace": draw(st.booleans()),
        "batch": draw(st.integers(1, 7)),
        "seed": draw(st.integers(0, 2**16)),
    }


class Wrapper(nn.Module):
    """A user module with a functional activation around a bare Linear: not convertible."""

    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        return torch.tanh(self.head(F.relu(self.body(x))))


def build(spec):
    """The module, the names of the Linears that must be fused and of the unsupported modules."""
    torch.manual_seed(spec["seed"])
    modules: list[nn.Module] = []
    fusable, unsupported = [], []
    w = spec["widths"]
    for i, layer in enumerate(spec["layers"]):
        modules.append(nn.Linear(w[i], w[i + 1], bias=layer["bias"]))
        linear_index = len(modules) - 1
        act_cls = ACTS[layer["act"]]
        act = None
        if act_cls is nn.LeakyReLU:
            act = nn.LeakyReLU(layer["slope"])
        elif act_cls is not None:
            act = act_cls()
        extra = {"dropout": nn.Dropout(0.5), "layernorm": nn.LayerNorm(w[i + 1])}.get(
            layer["extra"]
        )
        tail = [extra, act] if layer["extra_first"] else [act, extra]
        tail = [m for m in tail if m is not None]
        if tail and layer["act"] in FUSABLE and tail[0] is act:
            fusable.append(str(linear_index))
        for m in tail:
            modules.append(m)
            if isinstance(m, (nn.Dropout, nn.LayerNorm)):
                unsupported.append(str(len(modules) - 1))
    module: nn.Module = nn.Sequential(*modules)
    if spec["wrapped"]:
        module = Wrapper(module, w[-1])
        fusable = [f"body.{n}" for n in fusable]
        unsupported = [f"body.{n}" for n in unsupported] + ["head"]
    return module.double().eval(), fusable, unsupported


def outputs_and_grads(module, x, grad_out):
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    y = module(x)
    y.backward(grad_out)
    grads = {n: p.grad for n, p in module.named_parameters()}
    return y.detach(), x.grad, grads


@HYPOTHESIS
@given(spec=module_specs())
def test_random_modules_compute_the_same_function_and_gradients(spec):
    module, fusable, unsupported = build(spec)
    twin = copy.deepcopy(module)
    keys = {k: v.clone() for k, v in module.state_dict().items()}
    untouched = {name: twin.get_submodule(name) for name in unsupported}

    fast = af.accelerate(twin, inplace=spec["inplace"])

    assert (fast is twin) == spec["inplace"]
    if not spec["inplace"]:
        assert not any(isinstance(m, FusedLinear) for m in twin.modules())
    report = fast.aae_fast_report
    assert sorted(s.path for s in report.swapped) == sorted(fusable)
    fused = [n for n, m in fast.named_modules() if isinstance(m, FusedLinear)]
    assert sorted(fused) == sorted(fusable)
    skipped = {s.path for s in report.skipped}
    for name, m in untouched.items():
        assert fast.get_submodule(name) is m, f"{name} was replaced"
        assert name in skipped, f"{name} is not in the report"
    assert [id(p) for p in fast.parameters()] == [id(p) for p in twin.parameters()]
    # State dict: the same keys in the same order, the same values; loads both ways.
    state = fast.state_dict()
    assert list(state) == list(keys)
    for k, v in keys.items():
        assert torch.equal(state[k], v), k
    fast.load_state_dict(module.state_dict())
    module.load_state_dict(fast.state_dict())

    g = torch.Generator().manual_seed(spec["seed"])
    x = torch.randn(spec["batch"], spec["widths"][0], generator=g, dtype=torch.float64)
    with torch.no_grad():
        grad_out = torch.randn(module(x).shape, generator=g, dtype=torch.float64)
    y_ref, gx_ref, gp_ref = outputs_and_grads(module, x, grad_out)
    y, gx, gp = outputs_and_grads(fast, x, grad_out)
    assert_close(y, y_ref, "output", **FP64)
    assert_close(gx, gx_ref, "input gradient", **FP64)
    assert gp.keys() == gp_ref.keys()
    for name, grad in gp_ref.items():
        assert_close(gp[name], grad, f"gradient of {name}", **FP64)


# ------------------------------------------------------------------------------------------------
# Training: the package's reference models and a plain user-written AAE, before and after.

STEPS = 20


@pytest.mark.parametrize("name", sorted(twins.VARIANTS))
def test_reference_models_train_the_same_after_accelerate(name):
    cls_name, kwargs, _ = twins.VARIANTS[name]
    kwargs = {"input_dim": twins.IN, "hidden": twins.HID, "init_std": None, **kwargs}
    torch.manual_seed(0)
    eager = getattr(ref, cls_name)(**kwargs)
    model = copy.deepcopy(eager)
    opt_model = model.configure_optimizers()  # built BEFORE accelerate: must keep working
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())

    assert af.accelerate(model) is model

    # Every network is fused: each ReLU went into the Linear before it.
    assert len(model.aae_fast_report.swapped) == relus > 0
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert list(model.state_dict()) == list(eager.state_dict())
    opt_eager = eager.configure_optimizers()
    batches = twins.batches(name, STEPS)
    torch.manual_seed(1)
    expected = [eager.training_step(b, opt_eager) for b in batches]
    torch.manual_seed(1)
    actual = [model.training_step(b, opt_model) for b in batches]
    for step, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.keys() == e.keys()
        for key in e:
            assert_close(a[key], e[key], f"step {step} loss {key!r}", **FP32)
    params = dict(eager.named_parameters())
    for key, p in model.named_parameters():
        assert_close(p, params[key], f"{key} after {STEPS} steps", **FP32)


def user_run(model, opts, data, seed=1):
    torch.manual_seed(seed)
    return [user_aae.train_step(model, opts, x) for x in data]


@pytest.mark.parametrize("inplace", [True, False])
def test_user_written_aae_trains_the_same_after_accelerate(inplace):
    torch.manual_seed(0)
    eager = user_aae.UserAAE(input_dim=20, hidden=(24, 16), latent_dim=3, disc_hidden=(16, 12))
    model = copy.deepcopy(eager)
    opts = user_aae.make_optimizers(model)  # built before: the Parameters must stay the same
    before = [id(p) for p in model.parameters()]
    start = model.encoder[0].weight.detach().clone()
    fast = af.accelerate(model, inplace=inplace)

    assert (fast is model) == inplace
    assert [id(p) for p in fast.parameters()] == before
    assert len(fast.aae_fast_report.swapped) == 6  # 2 hidden layers x 3 networks
    g = torch.Generator().manual_seed(3)
    data = [torch.rand(10, 20, generator=g) for _ in range(STEPS)]
    expected = user_run(eager, user_aae.make_optimizers(eager), data)
    actual = user_run(fast, opts, data)
    for step, (a, e) in enumerate(zip(actual, expected, strict=True)):
        for key in e:
            assert_close(a[key], e[key], f"step {step} loss {key!r}", **FP32)
    params = dict(eager.named_parameters())
    for key, p in fast.named_parameters():
        assert_close(p, params[key], f"{key} after {STEPS} steps", **FP32)
    assert not torch.equal(fast.encoder[0].weight, start), "the optimiser built before did not step"


def test_an_optimiser_built_before_updates_the_same_tensors():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2), nn.Sigmoid())
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    weight = net[0].weight
    start = weight.detach().clone()
    af.accelerate(net)
    assert isinstance(net[0], FusedLinear) and net[0].weight is weight
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {
        id(p) for p in net.parameters()
    }
    net(torch.randn(4, 6)).sum().backward()
    opt.step()
    assert weight.grad is not None and not torch.equal(weight, start)
    assert opt.state[weight]["step"] == 1  # the optimiser's state is keyed by the same tensor


# ------------------------------------------------------------------------------------------------
# State dicts, copies, what is left alone.


def test_state_dict_keys_values_and_round_trip():
    torch.manual_seed(0)
    eager = nn.Sequential(
        nn.Linear(5, 7),
        nn.ReLU(),
        nn.BatchNorm1d(7),
        nn.Linear(7, 3, bias=False),
        nn.LeakyReLU(0.3),
    )
    fast = af.accelerate(copy.deepcopy(eager), inplace=False)
    assert list(fast.state_dict()) == list(eager.state_dict())
    for key, value in eager.state_dict().items():
        assert torch.equal(fast.state_dict()[key], value), key
    # Either way round, strictly, through a serialised checkpoint.
    other = copy.deepcopy(eager)
    for p in other.parameters():
        p.data.normal_()
    buffer = io.BytesIO()
    torch.save(other.state_dict(), buffer)
    buffer.seek(0)
    fast.load_state_dict(torch.load(buffer))
    x = torch.randn(4, 5)
    other.eval()
    fast.eval()
    assert_close(fast(x), other(x), "after loading an eager checkpoint")
    eager.load_state_dict(fast.state_dict())
    eager.eval()
    assert_close(eager(x), fast(x), "eager after loading the accelerated checkpoint")


def test_inplace_false_leaves_the_argument_alone_and_shares_tensors():
    shared = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model = nn.ModuleDict({"a": shared, "b": shared, "drop": nn.Dropout()})
    types = [type(m) for m in model.modules()]
    fast = af.accelerate(model, inplace=False)
    assert fast is not model and [type(m) for m in model.modules()] == types
    assert not hasattr(model, "aae_fast_report")
    assert isinstance(model["a"][0], nn.Linear) and isinstance(fast["a"][0], FusedLinear)
    assert fast["a"] is fast["b"]  # a submodule reached twice stays one module
    assert fast["drop"] is model["drop"]  # unchanged submodules are the same objects
    assert fast["a"][0].weight is model["a"][0].weight
    assert len(fast.aae_fast_report.swapped) == 1


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.relu(self.fc(x))


class MyLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


def test_unconvertible_submodules_are_left_intact_and_reported():
    hooked = nn.Linear(4, 4)
    calls = []
    hooked.register_forward_hook(lambda *args: calls.append(1))
    patched = nn.Linear(4, 4)
    patched.forward = lambda x: nn.Linear.forward(patched, x) + 1
    model = nn.Sequential(
        Custom(),  # functional activation: invisible
        nn.Linear(4, 4), nn.GELU(),  # no fused GELU
        hooked, nn.ReLU(),  # hooks would be skipped by a fused layer
        MyLinear(4, 4), nn.ReLU(),  # a subclass may compute something else
        nn.Linear(4, 4), nn.LeakyReLU(-0.1),  # the op needs a slope >= 0
        nn.Linear(4, 4), nn.Identity(),  # nothing to fuse
        patched, nn.Tanh(),  # forward replaced on the instance
        nn.Sequential(nn.Linear(4, 4), nn.ReLU()),  # excluded below
        nn.Linear(4, 4), nn.Sigmoid(),  # the only convertible pair
    )
    before = dict(model.named_modules())
    x = torch.randn(3, 4)
    expected = model(x)
    af.accelerate(model, exclude=["13"])
    report = model.aae_fast_report
    assert [(s.path, s.activation_path) for s in report.swapped] == [("14", "15")]
    reasons = {s.path: s.reason for s in report.skipped}
    expected_reasons = {
        "0.fc": "forward",
        "1": "GELU, which has no fused form",
        "2": "no fused equivalent",
        "3": "hooks",
        "5": "subclass of nn.Linear",
        "7": "slope >= 0",
        "9": "nn.Identity",
        "11": "forward is replaced",
        "13": "excluded",
    }
    for path, words in expected_reasons.items():
        assert words in reasons[path], (path, reasons[path])
    for path, m in before.items():
        if path not in ("14", "15"):
            assert model.get_submodule(path) is m, f"{path} was touched"
    assert isinstance(model[15], AbsorbedActivation)
    calls.clear()
    assert_close(model(x), expected, "output")
    assert calls == [1]  # the hook still runs


def test_verbose_prints_the_report(capsys):
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Dropout(), nn.Linear(3, 1))
    af.accelerate(net, verbose=True)
    out = capsys.readouterr().out
    assert "1 swapped, 2 skipped" in out
    assert "0 + 1: Linear(3->3, bias=True) + ReLU() -> FusedLinear(3->3, bias=True, relu)" in out
    assert "2 (Dropout): no fused equivalent" in out
    assert isinstance(net.aae_fast_report, AccelerationReport)
    assert str(net.aae_fast_report) in out


def test_a_second_call_changes_nothing_and_fused_models_are_left_alone():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    af.accelerate(net)
    layers = list(net)
    af.accelerate(net)
    assert list(net) == layers and not net.aae_fast_report.swapped
    assert "already" in net.aae_fast_report.skipped[0].reason
    model = af.AdversarialAutoencoder(input_dim=6, latent_dim=2, hidden=(5,))
    af.accelerate(model)
    assert not model.aae_fast_report.swapped
    networks = ("encoder", "decoder", "discriminator")
    assert {s.path for s in model.aae_fast_report.skipped} >= set(networks)
    assert all(isinstance(getattr(model, n), FusedMLP) for n in networks)


def test_a_shared_activation_instance_and_a_bare_root():
    act = nn.ReLU()
    net = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 4), act)
    x = torch.randn(2, 3)
    expected = net(x)
    af.accelerate(net)
    assert [type(m) for m in net] == [FusedLinear, AbsorbedActivation] * 2
    assert_close(net(x), expected, "output")
    bare = nn.Linear(3, 2)
    assert af.accelerate(bare) is bare and "root" in bare.aae_fast_report.skipped[0].reason


def test_exclude_leaves_a_shared_network_alone_under_either_name():
    net = nn.ModuleDict(
        {
            "g": nn.Sequential(nn.Linear(3, 4), nn.ReLU()),
            "d": nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1)),
        }
    )
    net["d_again"] = net["d"]  # shared: excluded under either name
    af.accelerate(net, exclude="d")
    assert isinstance(net["g"][0], FusedLinear) and isinstance(net["d"][0], nn.Linear)
    assert net["d_again"] is net["d"]


def test_a_gradient_penalty_through_an_accelerated_network_matches_eager():
    """create_graph=True: the second backward goes through the fused layers' gradients."""
    torch.manual_seed(3)
    eager = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.LeakyReLU(0.2),
                          nn.Linear(5, 1), nn.Sigmoid())
    fast = af.accelerate(copy.deepcopy(eager))
    assert [type(m) for m in fast][::2] == [FusedLinear] * 3

    def penalty_grads(net):
        z = torch.randn(7, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
        (grad,) = torch.autograd.grad(net(z).sum(), z, create_graph=True)
        grad.pow(2).sum().backward()
        return {name: p.grad for name, p in net.named_parameters()}

    expected, actual = penalty_grads(eager), penalty_grads(fast)
    assert actual.keys() == expected.keys()
    for name, grad in expected.items():
        assert_close(actual[name], grad, f"penalty gradient of {name}")


def test_autocast_bf16_still_works():
    torch.manual_seed(0)
    eager = nn.Sequential(
        nn.Linear(32, 40), nn.ReLU(), nn.Linear(40, 24), nn.Sigmoid(), nn.Linear(24, 5)
    )
    fast = af.accelerate(copy.deepcopy(eager))
    x = torch.randn(16, 32)
    with torch.no_grad():
        exact = copy.deepcopy(eager).double()(x.double())
    outs = {}
    for name, net in (("eager", eager), ("fast", fast)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
        y.float().sum().backward()
        outs[name] = y
    assert outs["fast"].dtype == outs["eager"].dtype == torch.bfloat16
    # The fused layers are no less accurate than nn.Linear's own bf16 path.
    err_fast = (outs["fast"].double() - exact).abs().max().item()
    err_eager = (outs["eager"].double() - exact).abs().max().item()
    assert err_fast <= 2 * err_eager + 1e-3, (err_fast, err_eager)
    grads = dict(eager.named_parameters())
    for key, p in fast.named_parameters():
        assert p.grad.dtype == torch.float32
        assert_close(p.grad, grads[key].grad, f"bf16 gradient of {key}", rtol=5e-2, atol=5e-2)


def test_bad_arguments_raise_type_errors():
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module, got builtins\.dict"):
        af.accelerate({"encoder": nn.Linear(2, 2)})
    with pytest.raises(TypeError, match="verbose must be a bool, got str"):
        af.accelerate(nn.Linear(2, 2), verbose="yes")
    with pytest.raises(TypeError, match="inplace must be a bool, got int"):
        af.accelerate(nn.Linear(2, 2), inplace=1)
    with pytest.raises(TypeError, match="exclude must be an iterable"):
        af.accelerate(nn.Linear(2, 2), exclude=3)
    with pytest.raises(ValueError, match="no submodule named 'discrimnator'"):
        af.accelerate(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), exclude=["discrimnator"])
