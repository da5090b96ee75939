"""The C++ Autograd kernels (csrc/autograd/) of linear_act, adversarial_d_loss, adversarial_g_loss,
reconstruction_loss, mmd and gaussian_reparameterize: they serve the ops when the extension is loaded (the Python formulas are not
registered over them), save only what the backward needs, record nothing when no gradient can flow,
and call the `<op>_backward` op, with the output_mask of the inputs that require grad, through the
dispatcher (so AOTAutograd traces it as an op of its own). Values and gradients are tested in each
op's own test file; the Python formulas (the fallback without the extension) there too, in a
subprocess with AAE_FAST_DISABLE_EXT=1.
"""

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import aae_fast as af
from aae_fast import _backend

OPS = torch.ops.aae_fast


def _linear_act_case(g):
    x, w, b = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    return (lambda x, w, b: af.ops.linear_act(x, w, b, "tanh")), [x, w, b]


def _linear_act_no_bias_case(g):
    x, w = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g)
    return (lambda x, w: af.ops.linear_act(x, w, None, "relu")), [x, w]


def _d_loss_case(g):
    return af.ops.adversarial_d_loss, [torch.randn(6, 1, generator=g), torch.randn(7, generator=g)]


def _g_loss_case(g):
    return af.ops.adversarial_g_loss, [torch.randn(7, generator=g)]


def _recon_case(g):
    out, target = torch.randn(4, 5, generator=g), torch.rand(4, 5, generator=g)
    return (lambda o, t: af.ops.reconstruction_loss(o, t, "bce")), [out, target]


def _mmd_case(g):
    return (lambda x, y: af.ops.mmd(x, y, (0.5, 2.0), unbiased=True)), [
        torch.randn(5, 3, generator=g), torch.randn(6, 3, generator=g)]


def _reparam_case(g):
    # A fresh stream per call: every call draws the same eps.
    fn = lambda mu, logvar: af.ops.gaussian_reparameterize(mu, logvar, af.PhiloxGenerator(11))  # noqa: E731
    return fn, [torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)]


CASES = {
    "linear_act": _linear_act_case,
    "linear_act_no_bias": _linear_act_no_bias_case,
    "adversarial_d_loss": _d_loss_case,
    "adversarial_g_loss": _g_loss_case,
    "reconstruction_loss": _recon_case,
    "mmd": _mmd_case,
    "gaussian_reparameterize": _reparam_case,
}
DIFFERENTIABLE = ["linear_act", "adversarial_d_loss", "adversarial_g_loss", "reconstruction_loss", "mmd",
                  "gaussian_reparameterize"]
OP_OF_CASE = {"linear_act_no_bias": "linear_act"}


def expected_saved(case, inputs, wanted, out):
    """What the formula saves (the Python setup_contexts' policy) when `wanted` inputs require grad."""
    if not any(wanted):
        return []
    if case.startswith("linear_act"):
        need_x, need_w = wanted[0], wanted[1]
        return [out] + ([inputs[0]] if need_w else []) + ([inputs[1]] if need_x else [])
    if case in ("reconstruction_loss", "mmd"):
        return list(inputs)
    if case == "gaussian_reparameterize":  # the op's [seed, offset] copy and logvar, for logvar's grad
        return [None, inputs[1]] if wanted[1] else []
    return [t for t, w in zip(inputs, wanted) if w]


def run_recording_saves(fn, inputs):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    return out, saved


def same_tensor(a, b):
    return a.shape == b.shape and a.data_ptr() == b.data_ptr()


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args))
        return func(*args, **(kwargs or {}))


# ------------------------------------------------------------------------------------------------
# Which autograd serves the ops


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_cpp_autograd_serves_the_op(name):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"aae_fast::{name}", "Autograd")
    assert name in _backend.STATUS.compiled_autograd
    assert name not in _backend.STATUS.python_autograd  # the Python formula was not registered over it
    assert af.backend_info()["ops"][name]["autograd"] == "cpp"
    case = name if name in CASES else "linear_act"
    fn, inputs = CASES[case](torch.Generator().manual_seed(0))
    out = fn(*[t.requires_grad_() for t in inputs])
    # A torch::autograd::Function node (a Python formula would give a BackwardCFunction).
    assert type(out.grad_fn).__name__ == "CppFunction", type(out.grad_fn)
    assert "CppNode" in out.grad_fn.name()


# ------------------------------------------------------------------------------------------------
# What is saved, and what the backward op is asked for


@pytest.mark.parametrize("case", sorted(CASES))
def test_saves_only_what_the_backward_needs(case):
    fn, base = CASES[case](torch.Generator().manual_seed(1))
    for wanted in itertools.product([False, True], repeat=len(base)):
        inputs = [t.detach().clone().requires_grad_(w) for t, w in zip(base, wanted)]
        out, saved = run_recording_saves(fn, inputs)
        expected = expected_saved(case, inputs, wanted, out)
        assert len(saved) == len(expected), (wanted, [tuple(t.shape) for t in saved])
        for got, want in zip(saved, expected):
            if want is None:  # gaussian_reparameterize's state: an op output, not reachable here
                assert got.dtype == torch.int64 and got.shape == (2,), wanted
            else:
                assert same_tensor(got, want), wanted
        assert out.requires_grad == any(wanted)
        assert (out.grad_fn is None) == (not any(wanted))
        torch.testing.assert_close(out.detach(), fn(*base))


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_grad_records_and_saves_nothing(case):
    fn, base = CASES[case](torch.Generator().manual_seed(2))
    inputs = [t.detach().clone().requires_grad_() for t in base]
    with torch.no_grad():
        out, saved = run_recording_saves(fn, inputs)
    assert saved == []
    assert out.grad_fn is None and not out.requires_grad
    torch.testing.assert_close(out, fn(*base))
    # Inputs that require no grad, grad mode on: the same.
    out, saved = run_recording_saves(fn, base)
    assert saved == [] and out.grad_fn is None and not out.requires_grad


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_op_gets_the_mask_of_the_inputs_that_require_grad(case):
    fn, base = CASES[case](torch.Generator().manual_seed(3))
    op = OP_OF_CASE.get(case, case)
    backward_op = getattr(OPS, f"{op}_backward").default
    for wanted in itertools.product([False, True], repeat=len(base)):
        if not any(wanted):
            continue
        inputs = [t.detach().clone().requires_grad_(w) for t, w in zip(base, wanted)]
        out = fn(*inputs)
        targets = [t for t in inputs if t.requires_grad]
        with RecordOps() as mode:
            grads = torch.autograd.grad(out.sum(), targets)
        calls = [args for func, args in mode.calls if func is backward_op]
        if op == "gaussian_reparameterize" and not wanted[1]:  # grad_mu = grad: no kernel
            assert calls == [] and [g.shape for g in grads] == [t.shape for t in targets]
            continue
        assert len(calls) == 1, [str(func) for func, _ in mode.calls]
        args = calls[0]
        if op == "linear_act":
            has_bias = len(base) == 3
            mask = [wanted[0], wanted[1], has_bias and wanted[2]]
            assert list(args[6]) == mask
            assert (args[2] is None) == (not wanted[1])  # x only for weight's gradient
            assert (args[3] is None) == (not wanted[0])  # weight only for x's
        elif op == "reconstruction_loss":
            assert list(args[4]) == list(wanted)
        elif op == "mmd":
            assert list(args[5]) == list(wanted)
        elif op == "adversarial_d_loss":
            assert [a is not None for a in args[1:]] == list(wanted)
        # One gradient per input that requires grad, shaped like it.
        assert [g.shape for g in grads] == [t.shape for t in targets]


def test_saved_tensors_are_freed_after_backward():
    fn, base = CASES["linear_act"](torch.Generator().manual_seed(4))
    inputs = [t.requires_grad_() for t in base]
    out = fn(*inputs).sum()
    out.backward(retain_graph=True)
    out.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.backward()


def test_backward_is_traced_as_its_own_op():
    from functorch.compile import aot_function, make_boxed_func

    graphs = {}

    def compiler(name):
        def compile_fn(gm, example_inputs):
            graphs[name] = gm
            return make_boxed_func(gm.forward)

        return compile_fn

    def step(x, w, b, real):
        h = af.ops.linear_act(x, w, b, "leaky_relu", 0.2)
        return af.ops.reconstruction_loss(h, x[:, :3], "mse") + af.ops.adversarial_d_loss(real, h)

    x, w, b, real = torch.randn(6, 4), torch.randn(3, 4), torch.randn(3), torch.randn(5)
    params = [w.requires_grad_(), b.requires_grad_(), real.requires_grad_()]
    compiled = aot_function(step, fw_compiler=compiler("fw"), bw_compiler=compiler("bw"))
    got = torch.autograd.grad(compiled(x, *params), params)
    ref = torch.autograd.grad(step(x, *params), params)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)

    def targets(gm):
        return {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}

    assert {"aae_fast.linear_act.default", "aae_fast.reconstruction_loss.default",
            "aae_fast.adversarial_d_loss.default"} <= targets(graphs["fw"])
    assert {"aae_fast.linear_act_backward.default", "aae_fast.reconstruction_loss_backward.default",
            "aae_fast.adversarial_d_loss_backward.default"} <= targets(graphs["bw"])


# torch's first dual_level() loads its jvp decompositions with torch.jit.script (deprecated).
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_mode_ad_is_rejected_not_silently_dropped(case):
    # The ops have no forward-mode formula: a dual input raises instead of losing its tangent.
    import torch.autograd.forward_ad as fwAD

    fn, base = CASES[case](torch.Generator().manual_seed(5))
    with fwAD.dual_level():
        dual = fwAD.make_dual(base[0], torch.ones_like(base[0]))
        with pytest.raises(RuntimeError, match="jvp is not implemented"):
            fn(dual, *base[1:])
