"""``torch.compile(model, backend="aae_fast")``: a user's FX graph rewritten onto aae_fast's ops.

Route 2 of "import as an accelerated backend" (issue 10; route 1 is `aae_fast.accelerate`).
Importing aae_fast registers the backend ``"aae_fast"`` with torch._dynamo. It receives Dynamo's
torch-level FX graph (before AOTAutograd), replaces the patterns below with aae_fast ops, then hands
the graph to an inner backend: inductor by default, like a plain ``torch.compile``.

    model = torch.compile(model, backend="aae_fast")
    model = torch.compile(model, backend="aae_fast",
                          options={"inner": "aot_eager", "verbose": True})

Patterns rewritten (matched on ``call_function`` / ``call_method`` nodes of the top-level graph):

``linear_act``
    ``F.linear(x, w, b)`` (``nn.Linear`` inlined by Dynamo) whose output has exactly one user, an
    activation ``relu`` / ``leaky_relu`` (slope >= 0) / ``sigmoid`` / ``tanh`` in any spelling
    (``torch.relu``, ``F.relu``, ``nn.ReLU(inplace=True)``, ``.relu()``, ``.relu_()``, ...)
    -> ``torch.ops.aae_fast.linear_act(x, w, b, act, slope)``. Only for a 2-D ``x``, a 2-D weight,
    a 1-D bias or none, one float dtype (float32/64, float16, bfloat16) and device (cpu, cuda) for
    all of them and for both outputs (so autocast regions, where F.linear changes the dtype, are
    left alone). A Linear with no activation after it stays ``F.linear`` (nothing to fuse), and
    so does one whose bias broadcasts. The op saves its output for the backward: for leaky_relu,
    which saves its input, a pattern whose output may be modified in place later (in the graph,
    or by its caller: an output the graph returns) is kept.
``adversarial_g_loss``
    ``F.binary_cross_entropy_with_logits(x, ONES)`` with the mean reduction, no weight, no
    pos_weight -> ``aae_fast.ops.adversarial_g_loss(x)`` (= mean softplus(-x)).
``adversarial_d_loss``
    ``bce(real, ONES) + bce(fake, ZEROS)`` (either order; both mean-reduced as above, each used only
    by the sum) -> ``aae_fast.ops.adversarial_d_loss(real, fake)``.
    ONES / ZEROS: a tensor the graph itself fills with 1 / 0 (``torch.ones_like``,
    ``torch.zeros_like``, ``torch.ones``, ``torch.zeros``, ``torch.full[_like]`` with 1 or 0,
    ``.new_ones``, ``.new_zeros``, ``.new_full``) of the logits' shape, dtype and device, not
    requiring grad. A label tensor passed in from outside is left alone (its values are unknown).
``reconstruction_loss``
    ``F.binary_cross_entropy_with_logits(o, t, reduction="sum") / N`` and
    ``F.mse_loss(o, t, reduction="sum") / N`` where N is provably ``o.shape[0]`` (a constant equal
    to the static batch size, or the same symbolic size), ``reduction="none"`` followed by
    ``.sum()`` then ``/ N``, and ``reduction="none"`` followed by ``.sum(1)`` (or ``-1``) then
    ``.mean()`` -> ``aae_fast.ops.reconstruction_loss(o, t, "bce" | "mse")`` (per-row sum over
    features, mean over rows: the same number). ``o`` and ``t`` 2-D of one shape, dtype, device.

``reparameterize``
    ``mu + torch.exp(s) * randn`` (either order, any spelling of +, * and exp) with ``randn`` a
    ``torch.randn_like(...)`` / ``torch.randn(...)`` of mu's shape, dtype and device used only
    there, no generator, on the CPU -> ``aae_fast.ops.gaussian_reparameterize(mu, logvar)``: logvar
    is L where s is ``0.5 * L`` / ``L * 0.5`` / ``L / 2``, else 2 s. One pass, and the backward
    regenerates the noise instead of keeping it. mu, logvar and the noise 2-D of one shape (no
    broadcasting), the result contiguous. ``exp(s)`` and s may have other users (they stay), but the
    op recomputes them from logvar, so neither may be modified in place before the add; and the op
    saves logvar for the backward where the plain code saves ``exp(s)``, so a logvar that requires
    grad must not be modified in place later in the graph (nor by the caller before the backward,
    which then raises torch's "modified by an inplace operation" error where the plain code would
    not).
``prior_sample``
    ``loc[idx] + scale * randn(n, D)`` (``loc.index_select(0, idx)`` too; scale 1 when absent)
    on the CPU -> ``aae_fast.ops.sample_gaussian_mixture``. ``loc`` [K, D] not requiring grad;
    ``scale`` a constant >= 0 or a tensor of shape (), [D] or [1, D] not requiring grad. ``idx``
    from ``torch.randint(0, K, (n,))`` used only there is drawn by the sampler (uniform components);
    any other int64 index (``torch.multinomial``, labels passed in) stays and is handed to the
    sampler as its labels. One Gaussian, ``mean + scale * randn(n, D)`` with a mean of shape [D]
    or [1, D], is the mixture with K = 1. Negative labels count from the end, as indexing does;
    a label outside [-K, K) raises a ValueError (indexing: an IndexError).
``standard_normal``
    A bare 2-D ``torch.randn(n, D)`` / ``torch.randn_like(t)`` (the usual prior sample,
    ``z_real = torch.randn_like(z_fake)``) left by the patterns above, contiguous and with D >= 1
    -> the same sampler, on the CPU: there it drew 10^6 x 2 normals 47x faster than inductor's
    code. All three sampling patterns are CPU only: on CUDA inductor's Triton randn is fast and
    fuses into its consumers, and the rewritten graphs ran slower (below).

For the loss ops the result dtype is float32 for float16/bfloat16 inputs where torch keeps the
input dtype; a cast back to the original node's dtype is inserted then, so every tensor downstream
keeps its dtype. The loss ops sum in float32 (a float16 sum that overflows to inf in torch stays
finite), and an infinite logit gives an infinite loss where torch's BCE gives NaN (0 * inf).

Random numbers: the three sampling patterns draw their noise from aae_fast's counter-based Philox
stream, with a fresh seed drawn from torch's default generator of the device at every call (in the
graph, so no host sync). A seeded run is reproducible, but its numbers are not those the eager
code draws; neither are inductor's (it generates its own random numbers), so runs compiled with
and without this backend differ from the first draw either way. Why rewrite them: inductor's
generated CPU code draws normals slowly, and the ops need not keep the noise for the backward.
Side by side in one run on this project's 2-core CPU (``aae-fast bench -k "reparameterize or
sample"``, benchmarks/results/cpu-2026-11-26-sampling.md, cases ``aae_fast_compile`` against
``compiled-eager``): forward + backward of ``mu + exp(0.5 * logvar) * randn_like(mu)`` ran at
0.96x, 1.05x, 2.9x and 2.0x plain inductor's speed at [100, 8], [1000, 8], [1000, 1000] and
[10^5, 8] (inductor's forward draws slowly; its backward, which reads the stored noise, is faster
than one that regenerates it); 10^6 samples of a diagonal 10-component mixture 17x, of an 8-D
Gaussian 19x. On an H200 they lost (benchmarks/results/nvidia-h200-2026-11-26-suite.md): 0.76x
and 0.73x at [100, 8] and [1000, 8], 0.65x for the mixture, 0.64x for the Gaussian, so graphs
on CUDA keep inductor's sampling. ``options={"patterns": (...)}`` without the three keeps torch's
numbers.

Not rewritten:

* a randn with a generator or ``out=``, one of another rank, full-covariance mixtures
  (``scale_tril[idx] @ eps``).
* ``F.binary_cross_entropy(torch.sigmoid(o), t)``: torch clamps the log at -100, the fused op does
  not; they differ for saturated outputs.
* ``F.mse_loss(o, t)`` with the mean reduction (a mean over all elements, not per-row sums), BCE
  with ``weight`` / ``pos_weight``, a BCE whose labels come from outside the graph, anything
  inside higher-order-op subgraphs (``torch.cond``, checkpointed regions), inputs of other ranks.

Safety: a pattern is rewritten only when its intermediate results have no other user (but for
the reparameterisation's exp(s) and s, above). The loss and linear ops are put where the pattern
first read its inputs, so they read what the pattern read; the sampling ops are put at the
pattern's final add, and are kept out when anything they read (or, for the reparameterisation,
recompute) may be modified in place inside the pattern. A pattern that would read an input again
after an in-place change (between the two terms of the discriminator's loss), or that spans a
change of global state (``torch.no_grad()``, autocast, inference mode entered or left inside it),
is kept; so is one whose labels tensor is used by anything but the BCE (it may be modified in
place, ``t.mul_(0.9)``).

Everything unmatched is left exactly as Dynamo traced it. What was rewritten and why other
candidates were not is in a `GraphReport` per compiled graph: `last_report()`, `reports()`,
``options={"verbose": True}`` prints each one.

Options (``torch.compile(..., options={...})``):

``inner``
    The backend the rewritten graph goes to: ``"inductor"`` (default), any registered backend name
    (``"aot_eager"``: AOTAutograd without code generation, quick to compile, useful in tests;
    ``"eager"``), or a callable ``(gm, example_inputs) -> callable``.
``patterns``
    The pattern families to apply, a subset of `PATTERNS` (default: all).
``verbose``
    Print each graph's report.
Any other key is an inductor config option, as with ``backend="inductor"`` (only with the inductor
inner backend); ``mode=`` works as for inductor too.

Double backward: AOTAutograd, which inductor and ``"aot_eager"`` run on, does not support it; with
``inner="eager"`` a rewritten graph differentiated twice (``create_graph=True``, a gradient
penalty) works, as the ops it inserts compute their gradients with differentiable torch ops then.
"""

from __future__ import annotations

import collections
import functools
import importlib.abc
import importlib.util
import inspect
import math
import operator
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from .ops import gaussian_reparameterize, sample_gaussian_mixture

__all__ = [
    "BACKEND_NAME",
    "PATTERNS",
    "GraphReport",
    "Rewrite",
    "Skip",
    "aae_fast_backend",
    "clear_reports",
    "last_report",
    "reports",
    "rewrite_graph",
]

BACKEND_NAME = "aae_fast"
#: The pattern families; ``options={"patterns": (...)}`` picks a subset.
PATTERNS = (
    "linear_act", "adversarial_loss", "reconstruction_loss", "reparameterize", "prior_sample",
    "standard_normal",
)

#: The _Rewriter method that applies each pattern family.
_PATTERN_METHODS = {
    "linear_act": "linear_act",
    "adversarial_loss": "adversarial_losses",
    "reconstruction_loss": "reconstruction_losses",
    "reparameterize": "reparameterizations",
    "prior_sample": "prior_samples",
    "standard_normal": "standard_normals",
}

_OPS = torch.ops.aae_fast
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_DEVICES = ("cpu", "cuda")
_MAX_REPORTS = 256


# ------------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class Rewrite:
    """Nodes (by FX name) replaced by one aae_fast op."""

    pattern: str  # "linear_act", "adversarial_g_loss", "adversarial_d_loss", "reconstruction_loss",
    # "reparameterize", "prior_sample", "standard_normal"
    op: str  # the aae_fast op now in the graph, e.g. "linear_act(relu)"
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Skip:
    """A candidate node (a linear, a loss) left as it was, and why."""

    node: str
    pattern: str
    reason: str


@dataclass
class GraphReport:
    """What the backend did to one graph Dynamo handed it."""

    graph_id: int
    rewrites: list[Rewrite] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def count(self, pattern: str | None = None) -> int:
        """Number of rewrites (of one pattern, or all)."""
        return sum(1 for r in self.rewrites if pattern is None or r.pattern == pattern)

    def __str__(self) -> str:
        lines = [
            f"aae_fast backend, graph {self.graph_id}: {len(self.rewrites)} rewritten, "
            f"{len(self.skipped)} left as they were"
        ]
        for r in self.rewrites:
            lines.append(f"  rewrote {' + '.join(r.nodes)} -> {r.op}")
        for s in self.skipped:
            lines.append(f"  kept {s.node} ({s.pattern}): {s.reason}")
        return "\n".join(lines)


_REPORTS: collections.deque[GraphReport] = collections.deque(maxlen=_MAX_REPORTS)
_GRAPH_COUNTER = [0]


def last_report() -> GraphReport | None:
    """The report of the graph the backend compiled last (None before the first)."""
    return _REPORTS[-1] if _REPORTS else None


def reports() -> list[GraphReport]:
    """Reports of the graphs compiled since `clear_reports` (the last 256 at most), oldest first."""
    return list(_REPORTS)


def clear_reports() -> None:
    _REPORTS.clear()


# ------------------------------------------------------------------------------------------------
# The backend


def aae_fast_backend(gm: fx.GraphModule, example_inputs: list, **kwargs: Any) -> Callable:
    """The ``"aae_fast"`` torch.compile backend: `rewrite_graph`, then the inner backend.

    ``kwargs`` are what torch.compile passes a custom backend: ``options`` (see the module
    docstring) and ``mode`` (inductor's modes).
    """
    options = dict(kwargs.pop("options", None) or {})
    mode = kwargs.pop("mode", None)
    if kwargs:
        raise TypeError(f"aae_fast backend: unexpected arguments {sorted(kwargs)}")
    inner = options.pop("inner", "inductor")
    verbose = options.pop("verbose", False)
    patterns = options.pop("patterns", PATTERNS)
    if not isinstance(verbose, bool):
        raise TypeError(f"aae_fast backend: verbose must be a bool, got {type(verbose).__name__}")
    inner_fn = _inner_compiler(inner, mode, options)

    report = rewrite_graph(gm, patterns=patterns)
    _REPORTS.append(report)
    if verbose:
        print(report)
    return inner_fn(gm, example_inputs)


def _inner_compiler(inner, mode, inductor_options: dict) -> Callable:
    if inner == "inductor":
        wrapper = getattr(torch, "_TorchCompileInductorWrapper", None)
        if wrapper is not None:  # validates options and applies modes exactly as torch.compile
            return wrapper(mode, inductor_options or None, None)
        from torch._inductor.compile_fx import compile_fx

        patches = dict(inductor_options)
        if mode and mode != "default":
            patches = {**torch._inductor.list_mode_options(mode), **patches}
        return lambda gm, inputs: compile_fx(gm, inputs, config_patches=patches or None)
    if inductor_options or (mode and mode != "default"):
        raise ValueError(
            f"aae_fast backend: options {sorted(inductor_options)} / mode={mode!r} are inductor "
            f"settings, but the inner backend is {inner!r}"
        )
    if callable(inner):
        return inner
    if isinstance(inner, str):
        if inner == BACKEND_NAME:
            raise ValueError("aae_fast backend: inner cannot be 'aae_fast' itself")
        from torch._dynamo import lookup_backend

        return lookup_backend(inner)
    raise TypeError(
        f"aae_fast backend: inner must be a backend name or a callable, got {type(inner).__name__}"
    )


def rewrite_graph(gm: fx.GraphModule, patterns: Iterable[str] = PATTERNS) -> GraphReport:
    """Rewrite ``gm`` in place (then recompile it) and return the report.

    ``gm`` must carry Dynamo's fake-tensor metadata (``node.meta["example_value"]``, or ``"val"``);
    nodes without it are never rewritten. Usable on its own, e.g. ahead of another backend.
    """
    if isinstance(patterns, str):
        patterns = (patterns,)
    chosen = tuple(patterns)
    unknown = sorted(set(chosen) - set(PATTERNS))
    if unknown:
        raise ValueError(f"unknown patterns {unknown}; known: {list(PATTERNS)}")
    _GRAPH_COUNTER[0] += 1
    report = GraphReport(_GRAPH_COUNTER[0])
    rewriter = _Rewriter(gm.graph, report)
    for pattern in PATTERNS:  # in this order: a bare randn is what the affine patterns leave
        if pattern in chosen:
            getattr(rewriter, _PATTERN_METHODS[pattern])()
    if report.rewrites:
        gm.graph.lint()
        gm.recompile()
    return report


# ------------------------------------------------------------------------------------------------
# Argument binding: the Python signatures of the functions matched (keyword or positional).


def _sig_linear(input, weight, bias=None): ...
def _sig_unary(input): ...
def _sig_relu(input, inplace=False): ...
def _sig_leaky(input, negative_slope=0.01, inplace=False): ...
def _sig_leaky_aten(input, negative_slope=0.01): ...
def _sig_bce(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
             pos_weight=None): ...
def _sig_mse(input, target, size_average=None, reduce=None, reduction="mean", weight=None): ...
def _sig_reduce(input, dim=None, keepdim=False, *, dtype=None): ...
def _sig_div(input, other, *, rounding_mode=None): ...
def _sig_add(input, other, *, alpha=1): ...
def _sig_mul(input, other): ...
def _sig_index_select(input, dim, index): ...
def _sig_like(input, *, dtype=None, layout=None, device=None, pin_memory=None,
              requires_grad=False, memory_format=None): ...
def _sig_full_like(input, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None,
                   requires_grad=False, memory_format=None): ...


@functools.lru_cache(maxsize=None)
def _signature(sig: Callable) -> inspect.Signature:
    return inspect.signature(sig)


def _bind(sig: Callable, args: tuple, kwargs: dict) -> dict | None:
    try:
        bound = _signature(sig).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


def _call_args(node: fx.Node, functions: dict, methods: dict) -> tuple[Any, dict] | None:
    """(what the table maps the node's target to, its bound arguments), or None.

    ``functions`` maps call_function targets, ``methods`` call_method names (the tensor is
    ``input``) to ``(value, signature)``."""
    if node.op == "call_function":
        entry = _lookup(functions, node.target)
    elif node.op == "call_method":
        entry = methods.get(node.target)
    else:
        return None
    if entry is None:
        return None
    value, sig = entry
    bound = _bind(sig, tuple(node.args), dict(node.kwargs))
    return None if bound is None else (value, bound)


def _lookup(table: dict, target: Any) -> Any:
    try:
        return table.get(target)
    except TypeError:  # an unhashable target
        return None


_LINEAR = {torch._C._nn.linear: ("linear", _sig_linear), F.linear: ("linear", _sig_linear)}

_ACTIVATION_FUNCTIONS: dict = {}
for _fn, _act, _sig in (
    (torch.relu, "relu", _sig_unary),
    (torch.relu_, "relu", _sig_unary),
    (F.relu, "relu", _sig_relu),
    (F.relu_, "relu", _sig_unary),
    (torch.sigmoid, "sigmoid", _sig_unary),
    (torch.sigmoid_, "sigmoid", _sig_unary),
    (F.sigmoid, "sigmoid", _sig_unary),
    (torch.tanh, "tanh", _sig_unary),
    (torch.tanh_, "tanh", _sig_unary),
    (F.tanh, "tanh", _sig_unary),
    (F.leaky_relu, "leaky_relu", _sig_leaky),
    (F.leaky_relu_, "leaky_relu", _sig_leaky_aten),
    (torch._C._nn.leaky_relu, "leaky_relu", _sig_leaky_aten),
    (torch._C._nn.leaky_relu_, "leaky_relu", _sig_leaky_aten),
):
    _ACTIVATION_FUNCTIONS.setdefault(_fn, (_act, _sig))
_ACTIVATION_METHODS = {
    name: (name.rstrip("_"), _sig_unary)
    for name in ("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_")
}

_BCE = {F.binary_cross_entropy_with_logits: ("bce", _sig_bce)}
_LOSS_SUM = {**_BCE, F.mse_loss: ("mse", _sig_mse)}
_ADD = {operator.add: ("add", _sig_add), torch.add: ("add", _sig_add)}
_ADD_METHODS = {"add": ("add", _sig_add), "__add__": ("add", _sig_add)}
_DIV = {
    operator.truediv: ("div", _sig_div),
    torch.div: ("div", _sig_div),
    torch.true_divide: ("div", _sig_div),
}
_DIV_METHODS = {
    "div": ("div", _sig_div),
    "true_divide": ("div", _sig_div),
    "__truediv__": ("div", _sig_div),
}
_SUM = {torch.sum: ("sum", _sig_reduce)}
_SUM_METHODS = {"sum": ("sum", _sig_reduce)}
_MEAN = {torch.mean: ("mean", _sig_reduce)}
_MEAN_METHODS = {"mean": ("mean", _sig_reduce)}
_ROW_SUM_DIMS = (1, -1, (1,), (-1,), [1], [-1])  # .sum(dim) over the features of [B, F]
_ROW_MEAN_DIMS = (None, 0, -1, (0,), (-1,), [0], [-1])  # .mean(dim) of the [B] row sums

# Constant-filled tensors: target -> (fill value or None: "argument fill_value", signature).
_FILL_FUNCTIONS = {
    torch.ones_like: (1.0, _sig_like),
    torch.zeros_like: (0.0, _sig_like),
    torch.full_like: (None, _sig_full_like),
}
_FILL_FACTORIES = {torch.ones: 1.0, torch.zeros: 0.0}  # size args vary: only kwargs are checked
_FILL_METHODS = {"new_ones": 1.0, "new_zeros": 0.0, "new_full": None}

# Gaussian sampling.
_MUL = {operator.mul: ("mul", _sig_mul), torch.mul: ("mul", _sig_mul)}
_MUL_METHODS = {"mul": ("mul", _sig_mul), "__mul__": ("mul", _sig_mul)}
_EXP = {torch.exp: ("exp", _sig_unary)}
_EXP_METHODS = {"exp": ("exp", _sig_unary)}
_HALF_DIVISOR = 2.0  # logvar / 2
_HALF_FACTOR = 0.5  # 0.5 * logvar
# Keyword arguments of randn / randn_like / randint that keep them plain draws from torch's
# default generator (anything else, a generator or out= above all, keeps the pattern).
_RANDOM_KWARGS = {"dtype", "device", "layout", "pin_memory", "requires_grad", "memory_format"}


# ------------------------------------------------------------------------------------------------
# Metadata guards


def _meta(value: Any) -> Any:
    """The fake value Dynamo recorded for a node (a tensor, SymInt, ...); constants as they are."""
    if isinstance(value, fx.Node):
        meta = value.meta
        return meta["example_value"] if "example_value" in meta else meta.get("val")
    return value


def _tensor(node: Any) -> torch.Tensor | None:
    value = _meta(node) if isinstance(node, fx.Node) else None
    return value if isinstance(value, torch.Tensor) else None


def _check_tensors(named: dict[str, Any], dims: dict[str, int] | None = None) -> str | None:
    """Why tensors ``named`` (name -> node) cannot go to an aae_fast op: missing metadata, an
    unsupported dtype or device, dtypes/devices that differ, or a rank other than ``dims[name]``."""
    ref = None
    for name, node in named.items():
        t = _tensor(node)
        if t is None:
            return f"{name} has no tensor metadata"
        if is_traceable_wrapper_subclass(t):
            return f"{name} is a tensor subclass ({type(t).__name__})"
        if t.dtype not in _DTYPES:
            return f"{name} is {t.dtype}; the fused ops take float32/64, float16, bfloat16"
        if t.device.type not in _DEVICES:
            return f"{name} is on {t.device.type!r}; the fused ops run on cpu and cuda"
        if t.layout != torch.strided:
            return f"{name} has layout {t.layout}"
        if dims and name in dims and t.dim() != dims[name]:
            return f"{name} is {t.dim()}-D, not {dims[name]}-D"
        if ref is None:
            ref = (name, t)
        elif t.dtype != ref[1].dtype or t.device != ref[1].device:
            return (
                f"{name} ({t.dtype}, {t.device}) and {ref[0]} ({ref[1].dtype}, {ref[1].device}) "
                "differ in dtype or device"
            )
    return None


def _same_size(a: Any, b: Any) -> bool:
    """True only when two sizes (ints, integral floats or SymInts) are provably equal."""
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    for v in (a, b):
        if isinstance(v, float) and not (math.isfinite(v) and v == int(v)):
            return False
        if not isinstance(v, (int, float, torch.SymInt)):
            return False
    if isinstance(a, torch.SymInt) or isinstance(b, torch.SymInt):
        from torch.fx.experimental.symbolic_shapes import statically_known_true

        try:
            return bool(statically_known_true(a == b))
        except Exception:  # noqa: BLE001 (symbolic reasoning failed: not provable)
            return False
    return a == b


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dim() == b.dim() and all(_same_size(x, y) for x, y in zip(a.shape, b.shape))


def _is_constant(value: Any, target: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value) == target
    )


def _name(node: fx.Node) -> str:
    target = node.target
    if node.op == "call_method":
        return f".{target}()"
    return getattr(target, "__name__", str(target))


# ------------------------------------------------------------------------------------------------
# The rewriter


class _Rewriter:
    def __init__(self, graph: fx.Graph, report: GraphReport) -> None:
        self.graph = graph
        self.report = report

    def skip(self, node: fx.Node, pattern: str, reason: str) -> None:
        self.report.skipped.append(Skip(node.name, pattern, reason))

    def replace(self, old: fx.Node, op, args: tuple, out_dtype: torch.dtype, pattern: str,
                label: str, consumed: list[fx.Node], at: fx.Node) -> fx.Node:
        """Compute ``op(*args)`` (whose result is ``out_dtype``) just before ``at``, the first node
        of the pattern that reads the inputs (so that it reads them as the pattern did, whatever
        the graph does to them later), cast to ``old``'s dtype when that differs; use it for
        ``old``, the pattern's result, and erase ``old``, then each of ``consumed`` (in order) that
        is left without users."""
        want = _tensor(old)
        with self.graph.inserting_before(at):
            new = self.graph.call_function(op, args)
            result = new
            if want is not None and want.dtype != out_dtype:
                result = self.graph.call_method("to", (new, want.dtype))
        for key in ("stack_trace", "nn_module_stack"):
            if key in old.meta:
                new.meta[key] = old.meta[key]
        fake = _fake_result(op, args)
        if fake is not None:
            new.meta["example_value"] = fake
        if result is not new:
            result.meta["example_value"] = want
        old.replace_all_uses_with(result)
        removed = [old.name]
        self.graph.erase_node(old)
        for node in consumed:
            if _alive(node) and not node.users:
                removed.append(node.name)
                self.graph.erase_node(node)
        self.report.rewrites.append(Rewrite(pattern, label, tuple(reversed(removed))))
        return result

    # -- linear + activation -------------------------------------------------------------------

    def linear_act(self) -> None:
        for node in list(self.graph.nodes):
            if not _alive(node):
                continue  # erased by an earlier rewrite
            call = _call_args(node, _LINEAR, {})
            if call is None:
                continue
            bound = call[1]
            act, problem = self._activation_after(node)
            if problem is None:
                problem = self._linear_problem(node, bound, act)
            if problem is None:
                problem = _unsafe_between(node, act[2])
            if problem is None and act[0] == "leaky_relu" and _tensor(act[2]).requires_grad:
                # The op saves its output for the backward where leaky_relu saves its input: an
                # in-place change later in the graph, or by the caller of a graph that returns it
                # (or a view of it), would break the backward.
                problem = _mutated_after(act[2], act[2], "the activation's output (the op saves it)")
                if problem is None and _returned(act[2]):
                    problem = ("the activation's output is returned (the op saves it; the caller "
                               "may modify it in place)")
            if problem is not None:
                self.skip(node, "linear_act", problem)
                continue
            activation, slope, act_node = act
            shown = f"{activation}, {slope}" if activation == "leaky_relu" else activation
            label = f"linear_act({shown})"
            self.replace(
                act_node,
                _OPS.linear_act.default,
                (bound["input"], bound["weight"], bound["bias"], activation, float(slope)),
                _tensor(bound["input"]).dtype,
                "linear_act",
                label,
                [node],
                at=node,
            )

    def _activation_after(self, linear: fx.Node):
        users = list(linear.users)
        if len(users) != 1:
            return None, f"its output has {len(users)} users: the activation cannot absorb it"
        user = users[0]
        if user.op == "output":
            return None, "its output is a graph output: no activation to fuse"
        call = _call_args(user, _ACTIVATION_FUNCTIONS, _ACTIVATION_METHODS)
        if call is None:
            return None, f"followed by {_name(user)}, not an activation the fused op takes"
        activation, bound = call
        if bound["input"] is not linear:
            return None, f"followed by {_name(user)} on another tensor"
        slope = 0.01
        if activation == "leaky_relu":
            slope = bound["negative_slope"]
            if isinstance(slope, bool) or not isinstance(slope, (int, float)):
                return None, "leaky_relu's negative_slope is not a constant"
            if not (0.0 <= slope < math.inf):
                return None, f"leaky_relu's negative_slope is {slope}; the fused op needs >= 0"
        if not isinstance(bound.get("inplace", False), bool):
            return None, f"{_name(user)}'s inplace flag is not a constant"
        return (activation, slope, user), None

    def _linear_problem(self, node: fx.Node, bound: dict, act) -> str | None:
        named = {"x": bound["input"], "weight": bound["weight"]}
        dims = {"x": 2, "weight": 2}
        if bound["bias"] is not None:
            named["bias"] = bound["bias"]
            dims["bias"] = 1
        for name, value in named.items():
            if not isinstance(value, fx.Node):
                return f"{name} is not a tensor in the graph"
        problem = _check_tensors(named, dims)
        if problem:
            return problem
        weight = _tensor(bound["weight"])
        if bound["bias"] is not None and not _same_size(_tensor(bound["bias"]).shape[0],
                                                        weight.shape[0]):
            return "the bias broadcasts (its size is not the weight's number of rows)"
        dtype = _tensor(bound["input"]).dtype
        for what, n in (("the linear's output", node), ("the activation's output", act[2])):
            t = _tensor(n)
            if t is None or t.dtype != dtype:
                return f"{what} is not {dtype} (autocast?)"
        return None

    # -- adversarial losses --------------------------------------------------------------------

    def adversarial_losses(self) -> None:
        # The sum of two BCEs first (the discriminator's loss), then single BCEs against ones.
        for node in list(self.graph.nodes):
            if not _alive(node):
                continue
            call = _call_args(node, _ADD, _ADD_METHODS)
            if call is None:
                continue
            bound = call[1]
            if not _is_constant(bound["alpha"], 1.0):
                continue
            terms = [self._mean_bce(t) for t in (bound["input"], bound["other"])]
            if any(t is None or isinstance(t, str) for t in terms):
                continue
            by_label = {label: (bce, logits) for (bce, logits, label) in terms}
            if set(by_label) != {1.0, 0.0}:
                continue
            (real_bce, real), (fake_bce, fake) = by_label[1.0], by_label[0.0]
            if len(real_bce.users) != 1 or len(fake_bce.users) != 1:
                self.skip(node, "adversarial_d_loss", "a BCE term is also used elsewhere")
                continue
            problem = _check_tensors({"real_logits": real, "fake_logits": fake})
            first, last = sorted((real_bce, fake_bce), key=_position)
            if problem is None:
                problem = _unsafe_between(first, node, (real if first is real_bce else fake,))
            if problem:
                self.skip(node, "adversarial_d_loss", problem)
                continue
            self.replace(
                node,
                _OPS.adversarial_d_loss.default,
                (real, fake),
                _loss_dtype(real),
                "adversarial_d_loss",
                "adversarial_d_loss",
                [real_bce, fake_bce, *self._targets(real_bce, fake_bce)],
                at=last,
            )
        for node in list(self.graph.nodes):
            if not _alive(node) or _call_args(node, _BCE, {}) is None:
                continue
            term = self._mean_bce(node)
            if isinstance(term, str):
                self.skip(node, "adversarial_g_loss", term)
                continue
            if term is None:
                continue  # another reduction: the reconstruction losses' business
            bce, logits, label = term
            if label != 1.0:
                self.skip(node, "adversarial_g_loss", "BCE against zeros alone has no fused op")
                continue
            problem = _check_tensors({"logits": logits})
            if problem:
                self.skip(node, "adversarial_g_loss", problem)
                continue
            self.replace(
                node,
                _OPS.adversarial_g_loss.default,
                (logits,),
                _loss_dtype(logits),
                "adversarial_g_loss",
                "adversarial_g_loss",
                self._targets(bce),
                at=bce,
            )

    def _mean_bce(self, node: Any):
        """(bce node, logits node, 1.0 or 0.0) for ``F.bce_with_logits(x, ONES|ZEROS)`` with the
        mean reduction; a reason string for a mean-reduced BCE that cannot be rewritten; None
        for anything else."""
        if not isinstance(node, fx.Node):
            return None
        call = _call_args(node, _BCE, {})
        if call is None:
            return None
        bound = call[1]
        if bound["reduction"] != "mean":
            return None
        if any(bound[k] is not None for k in ("weight", "pos_weight", "size_average", "reduce")):
            return "weight, pos_weight or a legacy reduction argument is given"
        logits, target = bound["input"], bound["target"]
        if not isinstance(logits, fx.Node) or not isinstance(target, fx.Node):
            return "logits or labels are not tensors in the graph"
        label = _fill_value(target)
        if label not in (0.0, 1.0):
            return "its labels are not a tensor of ones or zeros made in the graph"
        if any(_call_args(u, _BCE, {}) is None for u in target.users):
            # Anything else may change the values (t.mul_(0.9), t[0] = 0) or alias them.
            return "its labels tensor is also used by other ops (it may be modified in place)"
        lt, tt = _tensor(logits), _tensor(target)
        if lt is None or tt is None:
            return "no tensor metadata"
        if not _same_shape(lt, tt) or lt.dtype != tt.dtype or lt.device != tt.device:
            return "its labels differ from the logits in shape, dtype or device"
        if tt.requires_grad:
            return "its labels require grad"
        return node, logits, label

    @staticmethod
    def _targets(*bces: fx.Node) -> list[fx.Node]:
        return [_bind(_sig_bce, tuple(b.args), dict(b.kwargs))["target"] for b in bces]

    # -- reconstruction losses -----------------------------------------------------------------

    def reconstruction_losses(self) -> None:
        for node in list(self.graph.nodes):
            if not _alive(node):
                continue
            div = _call_args(node, _DIV, _DIV_METHODS)
            if div is not None:
                self._total_over_rows(node, div[1])
                continue
            mean = _call_args(node, _MEAN, _MEAN_METHODS)
            if mean is not None:
                self._mean_of_row_sums(node, mean[1])

    def _total_over_rows(self, node: fx.Node, bound: dict) -> None:
        """``total / N`` with total = loss(o, t, "sum") or loss(o, t, "none").sum()."""
        if bound["rounding_mode"] is not None:
            return
        total = bound["input"]
        if not isinstance(total, fx.Node):
            return
        chain = [total]
        loss = _call_args(total, _LOSS_SUM, {})
        if loss is not None and loss[1]["reduction"] != "sum":
            return
        if loss is None:
            summed = _call_args(total, _SUM, _SUM_METHODS)
            if summed is None:
                return
            sb = summed[1]
            if sb["dim"] is not None or sb["keepdim"] or sb["dtype"] is not None:
                return
            inner = sb["input"]
            loss = _call_args(inner, _LOSS_SUM, {}) if isinstance(inner, fx.Node) else None
            if loss is None or loss[1]["reduction"] != "none":
                return
            chain.append(inner)
        kind, lb = loss
        problem = self._recon_problem(lb, chain)
        if problem is None:
            problem = _unsafe_between(chain[-1], node)
        if problem is None:
            divisor = _meta(bound["other"])
            rows = _tensor(lb["input"]).shape[0]
            if not _same_size(divisor, rows):
                problem = f"divided by {bound['other']}, not provably the batch size {rows}"
        if problem:
            self.skip(chain[-1], "reconstruction_loss", problem)
            return
        self.replace(
            node,
            _OPS.reconstruction_loss.default,
            (lb["input"], lb["target"], kind),
            _loss_dtype(lb["input"]),
            "reconstruction_loss",
            f"reconstruction_loss({kind})",
            chain,
            at=chain[-1],
        )

    def _mean_of_row_sums(self, node: fx.Node, bound: dict) -> None:
        """``loss(o, t, "none").sum(1).mean()``."""
        if bound["keepdim"] or bound["dtype"] is not None or bound["dim"] not in _ROW_MEAN_DIMS:
            return
        rows = bound["input"]
        summed = _call_args(rows, _SUM, _SUM_METHODS) if isinstance(rows, fx.Node) else None
        if summed is None:
            return
        sb = summed[1]
        if sb["keepdim"] or sb["dtype"] is not None or sb["dim"] not in _ROW_SUM_DIMS:
            return
        inner = sb["input"]
        loss = _call_args(inner, _LOSS_SUM, {}) if isinstance(inner, fx.Node) else None
        if loss is None or loss[1]["reduction"] != "none":
            return
        kind, lb = loss
        problem = self._recon_problem(lb, [rows, inner]) or _unsafe_between(inner, node)
        if problem:
            self.skip(inner, "reconstruction_loss", problem)
            return
        self.replace(
            node,
            _OPS.reconstruction_loss.default,
            (lb["input"], lb["target"], kind),
            _loss_dtype(lb["input"]),
            "reconstruction_loss",
            f"reconstruction_loss({kind})",
            [rows, inner],
            at=inner,
        )

    # -- Gaussian sampling ---------------------------------------------------------------------

    def _sums(self):
        """Every live ``a + b`` (alpha 1) of the graph: (node, a, b)."""
        for node in list(self.graph.nodes):
            if not _alive(node):
                continue
            call = _call_args(node, _ADD, _ADD_METHODS)
            if call is not None and _is_constant(call[1]["alpha"], 1.0):
                yield node, call[1]["input"], call[1]["other"]

    def reparameterizations(self) -> None:
        """``mu + exp(s) * randn`` -> ``gaussian_reparameterize(mu, logvar)``."""
        for node, a, b in self._sums():
            for mu, product in ((a, b), (b, a)):
                found = _noise_times(product, _exp_input)
                if found is not None and isinstance(mu, fx.Node) and mu is not found[0]:
                    break
            else:
                continue
            mul, exp, s, eps = found
            logvar = _half_of(s)
            source = logvar if logvar is not None else s
            pattern_nodes = [mul, eps, exp] + ([s] if logvar is not None else [])
            problem = (
                _off_cpu(node)
                or _only_used_by(mul, node, "the noise term")
                or _only_used_by(eps, mul, "the noise")
                or _noise_problem(eps)
                or _check_tensors(
                    {"mu": mu, "logvar": source, "noise": eps, "z": node},
                    {"mu": 2, "logvar": 2, "noise": 2, "z": 2},
                )
            )
            if problem is None:
                shapes = [_tensor(n) for n in (mu, source, eps, node)]
                if not all(_same_shape(shapes[0], t) for t in shapes[1:]):
                    problem = "mu, the log-variance and the noise differ in shape (broadcasting)"
                elif not _contiguous(shapes[-1]):
                    problem = "the result is not contiguous (the fused op's would be)"
            if problem is None:
                # The op recomputes exp(s) (and s) from the source: none may change in between.
                first = min(pattern_nodes, key=_position)
                problem = _unsafe_between(first, node, (source, s, exp))
            if problem is None and logvar is not None and _tensor(logvar).requires_grad:
                problem = _mutated_after(node, logvar, "logvar (the fused op saves it)")
            if problem:
                self.skip(node, "reparameterize", problem)
                continue
            if logvar is not None:
                op, label = gaussian_reparameterize, "gaussian_reparameterize"
            else:
                op, label = _reparameterize_log_std, "gaussian_reparameterize(2 * log std)"
            self.replace(node, op, (mu, source), _tensor(mu).dtype, "reparameterize", label,
                         pattern_nodes, at=node)

    def prior_samples(self) -> None:
        """``loc[idx] + scale * randn`` -> ``sample_gaussian_mixture``."""
        for node, a, b in self._sums():
            for chosen, noise_term in ((a, b), (b, a)):
                means = _component_means(chosen)
                noise = _noise_times(noise_term, _scale_factor, alone=True)
                if means is not None and noise is not None and chosen not in (noise[0], noise[3]):
                    break
            else:
                continue
            loc, idx = means
            mul, _, scale, eps = noise
            problem = self._prior_problem(node, chosen, loc, idx, mul, scale, eps)
            if problem:
                self.skip(node, "prior_sample", problem)
                continue
            pattern_nodes = [n for n in (mul, eps) if n is not None]
            if idx is None:  # one Gaussian: mean + scale * randn(n, D)
                n, labels = _noise_size(eps), None
            else:
                pattern_nodes.append(chosen)
                uniform = _uniform_choice(idx, _tensor(loc).shape[0])
                if uniform is not None:
                    pattern_nodes.append(idx)
                    n, labels = uniform, None
                else:
                    n, labels = None, idx
            first = min(pattern_nodes, key=_position)
            problem = _unsafe_between(first, node, (loc, scale, idx))
            if problem:
                self.skip(node, "prior_sample", problem)
                continue
            label = "sample_gaussian_mixture" + ("" if labels is None else "(labels)")
            self.replace(node, _sample_mixture, (n, loc, scale, labels, _tensor(node).dtype),
                         _tensor(node).dtype, "prior_sample", label, pattern_nodes, at=node)

    def standard_normals(self) -> None:
        """A bare 2-D ``randn`` / ``randn_like`` on the CPU -> the Philox sampler."""
        for node in list(self.graph.nodes):
            if not (_alive(node) and _random_draw(node)):
                continue
            t = _tensor(node)
            if t is None or t.dim() != 2 or t.device.type != "cpu" or t.dtype not in _DTYPES:
                continue
            problem = _noise_problem(node)
            if problem is None and _same_size(t.shape[1], 0):
                problem = "no columns"
            if problem is None and not _contiguous(t):
                problem = "randn_like keeps its input's strides; the sampler's are contiguous"
            if problem:
                self.skip(node, "standard_normal", problem)
                continue
            self.replace(node, _standard_normal, (_noise_size(node), t.dtype, t.device), t.dtype,
                         "standard_normal", "sample_gaussian_mixture(standard normal)", [], at=node)

    @staticmethod
    def _prior_problem(node, chosen, loc, idx, mul, scale, eps) -> str | None:
        problem = (
            _off_cpu(node)
            or (_only_used_by(mul, node, "the noise term") if mul is not None else None)
            or _only_used_by(eps, mul if mul is not None else node, "the noise")
            or _noise_problem(eps)
            or _check_tensors({"loc": loc, "noise": eps, "sample": node},
                              {"noise": 2, "sample": 2})
        )
        if problem:
            return problem
        lt, et = _tensor(loc), _tensor(eps)
        if lt.requires_grad:
            return "the means require grad (the fused sampler has no gradient for them)"
        if not (_same_size(lt.shape[-1], et.shape[1]) and _same_shape(et, _tensor(node))):
            return "the means and the noise do not make [n, D] samples (broadcasting)"
        if _same_size(et.shape[1], 0) or (idx is not None and _same_size(lt.shape[0], 0)):
            return "no columns or no components"
        if not _contiguous(_tensor(node)):
            return "the result is not contiguous (the sampler's would be)"
        if idx is not None:
            if set(chosen.users) - {node, eps}:
                return "the selected means are also used elsewhere"
            it = _tensor(idx)
            if it is None or it.dtype != torch.int64 or it.dim() != 1 or it.device != lt.device:
                return "the component index is not an int64 vector on the means' device"
            if not _same_size(it.shape[0], et.shape[0]):
                return "the index and the noise differ in their number of rows"
        if isinstance(scale, fx.Node):
            st = _tensor(scale)
            problem = _check_tensors({"loc": loc, "scale": scale})
            if problem:
                return problem
            if st.requires_grad:
                return "the scale requires grad (the fused sampler has no gradient for it)"
            if st.dim() > 2 or any(not _same_size(x, 1) for x in st.shape[:-1]) or (
                st.dim() and not (_same_size(st.shape[-1], 1)
                                  or _same_size(st.shape[-1], lt.shape[-1]))
            ):
                return f"the scale has shape {tuple(st.shape)}; the rewrite takes (), [D] or [1, D]"
        elif not (math.isfinite(scale) and scale >= 0):
            return f"the scale is {scale}; the rewrite takes a finite constant >= 0"
        return None

    def _recon_problem(self, lb: dict, chain: list[fx.Node]) -> str | None:
        for n in chain:
            if len(n.users) != 1:
                return f"{n.name} is also used elsewhere"
        if lb["size_average"] is not None or lb["reduce"] is not None or lb["weight"] is not None:
            return "weight or a legacy reduction argument is given"
        if lb.get("pos_weight") is not None:
            return "pos_weight is given"
        o, t = lb["input"], lb["target"]
        if not isinstance(o, fx.Node) or not isinstance(t, fx.Node):
            return "output or target is not a tensor in the graph"
        problem = _check_tensors({"output": o, "target": t}, {"output": 2, "target": 2})
        if problem:
            return problem
        if not _same_shape(_tensor(o), _tensor(t)):
            return "output and target differ in shape (broadcasting)"
        return None


def _fill_value(node: fx.Node) -> float | None:
    """The value every element of ``node`` provably holds (a tensor filled in the graph), or
    None. Requires no ``out=`` and no ``requires_grad=True``."""
    if node.op == "call_function":
        if _lookup(_FILL_FACTORIES, node.target) is not None:
            kwargs = dict(node.kwargs)
            if kwargs.get("out") is not None or kwargs.get("requires_grad"):
                return None
            return _FILL_FACTORIES[node.target]
        if node.target is torch.full:
            args, kwargs = list(node.args), dict(node.kwargs)
            fill = args[1] if len(args) > 1 else kwargs.get("fill_value")
            if kwargs.get("out") is not None or kwargs.get("requires_grad"):
                return None
            return float(fill) if _is_constant(fill, 0.0) or _is_constant(fill, 1.0) else None
        call = _call_args(node, _FILL_FUNCTIONS, {})
        if call is None:
            return None
        value, bound = call
        if bound["requires_grad"]:
            return None
        if value is None:
            fill = bound["fill_value"]
            return float(fill) if _is_constant(fill, 0.0) or _is_constant(fill, 1.0) else None
        return value
    if node.op == "call_method" and node.target in _FILL_METHODS:
        kwargs = dict(node.kwargs)
        if kwargs.get("requires_grad"):
            return None
        value = _FILL_METHODS[node.target]
        if value is None:  # new_full(size, fill_value)
            fill = node.args[2] if len(node.args) > 2 else kwargs.get("fill_value")
            return float(fill) if _is_constant(fill, 0.0) or _is_constant(fill, 1.0) else None
        return value
    return None


# ------------------------------------------------------------------------------------------------
# Gaussian sampling: matching helpers and the functions the rewrites call.


def _random_draw(node: Any) -> bool:
    """Whether ``node`` is ``torch.randn(...)`` or ``torch.randn_like(...)``."""
    return isinstance(node, fx.Node) and node.op == "call_function" and (
        node.target is torch.randn or node.target is torch.randn_like
    )


def _off_cpu(node: fx.Node) -> str | None:
    """The sampling rewrites pay on the CPU only. On an H200 (2026-11-26, one run, against plain
    inductor) the rewritten graphs ran slower: forward + backward of the reparameterisation 0.76x
    at [100, 8] and 0.73x at [1000, 8]; 10^6 samples of a diagonal mixture 0.65x, of an 8-D
    Gaussian 0.64x. Inductor's Triton randn fuses into its consumers there; the rewritten graph
    launches the op and its seed draw besides (not profiled)."""
    t = _tensor(node)
    if t is not None and t.device.type != "cpu":
        return (f"on {t.device.type} inductor's own sampling is faster (the sampling rewrites "
                "are CPU only)")
    return None


def _noise_problem(eps: fx.Node) -> str | None:
    """Why a randn / randn_like node is not a plain draw from torch's default generator."""
    extra = {key for key, value in eps.kwargs.items() if value is not None} - _RANDOM_KWARGS
    if extra:
        return f"its randn takes {sorted(extra)} (a generator or out= is kept as written)"
    if eps.kwargs.get("requires_grad"):
        return "its randn requires grad"
    return None


def _noise_times(node: Any, factor: Callable, alone: bool = False):
    """(mul node, other operand, factor(other), randn node) for ``randn * other`` (either order)
    when ``factor`` accepts the other operand (returns not None); with ``alone``, a bare randn is
    ``(None, None, 1.0, randn)``. None otherwise."""
    if alone and _random_draw(node):
        return None, None, 1.0, node
    if not isinstance(node, fx.Node):
        return None
    call = _call_args(node, _MUL, _MUL_METHODS)
    if call is None:
        return None
    x, y = call[1]["input"], call[1]["other"]
    for eps, other in ((x, y), (y, x)):
        if _random_draw(eps) and eps is not other:
            value = factor(other)
            if value is not None:
                return node, other, value, eps
    return None


def _exp_input(node: Any) -> fx.Node | None:
    """s for ``torch.exp(s)`` / ``s.exp()``."""
    call = _call_args(node, _EXP, _EXP_METHODS) if isinstance(node, fx.Node) else None
    if call is None or not isinstance(call[1]["input"], fx.Node):
        return None
    return call[1]["input"]


def _half_of(node: fx.Node) -> fx.Node | None:
    """L for ``0.5 * L``, ``L * 0.5``, ``L / 2`` (any spelling); None otherwise."""
    call = _call_args(node, _MUL, _MUL_METHODS)
    if call is not None:
        x, y = call[1]["input"], call[1]["other"]
        for value, const in ((x, y), (y, x)):
            if isinstance(value, fx.Node) and _is_constant(const, _HALF_FACTOR):
                return value
        return None
    call = _call_args(node, _DIV, _DIV_METHODS)
    if call is not None and call[1]["rounding_mode"] is None:
        value, const = call[1]["input"], call[1]["other"]
        if isinstance(value, fx.Node) and _is_constant(const, _HALF_DIVISOR):
            return value
    return None


def _scale_factor(node: Any) -> Any:
    """The scale of ``scale * randn``: a number, or a tensor node (checked later)."""
    if isinstance(node, fx.Node):
        return node
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return float(node)
    return None


def _component_means(node: Any) -> tuple[fx.Node, fx.Node | None] | None:
    """(loc, idx) for ``loc[idx]`` / ``loc.index_select(0, idx)`` with node operands, a [K, D]
    loc; (mean, None) for a mean of shape [D] or [1, D] (one Gaussian)."""
    if not isinstance(node, fx.Node):
        return None
    t = _tensor(node)
    if t is not None and (t.dim() == 1 or (t.dim() == 2 and _same_size(t.shape[0], 1))):
        if node.op == "call_function" and node.target is operator.getitem:
            return None  # a row picked out of something: not a plain mean
        return node, None
    if node.op == "call_function" and node.target is operator.getitem:
        loc, idx = node.args
    else:
        call = _call_args(node, {torch.index_select: ("index_select", _sig_index_select)},
                          {"index_select": ("index_select", _sig_index_select)})
        if call is None or call[1]["dim"] != 0:
            return None
        loc, idx = call[1]["input"], call[1]["index"]
    if not (isinstance(loc, fx.Node) and isinstance(idx, fx.Node)):
        return None
    lt = _tensor(loc)
    return (loc, idx) if lt is not None and lt.dim() == 2 else None


def _uniform_choice(idx: fx.Node, k: Any) -> Any:
    """n (an int or a node) when ``idx`` is ``torch.randint(0, K, (n,))`` of the K component
    means, a plain draw used only to pick the means; None otherwise."""
    if idx.op != "call_function" or idx.target is not torch.randint or len(idx.users) != 1:
        return None
    if _noise_problem(idx) or idx.kwargs.get("dtype") not in (None, torch.int64):
        return None
    args = list(idx.args)  # randint(high, size) or randint(low, high, size), positionally
    if len(args) == 2:
        low, high, size = 0, *args
    elif len(args) == 3:
        low, high, size = args
    else:
        return None
    if not isinstance(size, (tuple, list)) or len(size) != 1 or not _is_constant(low, 0):
        return None
    return size[0] if _same_size(_meta(high), k) else None


def _noise_size(eps: fx.Node) -> Any:
    """What gives a randn node's [n, D] in the graph: randn_like's input (a tensor), or randn's
    sizes (ints or SymInt nodes; a tuple of them, or one node holding them)."""
    if eps.target is torch.randn_like:
        return eps.args[0] if eps.args else eps.kwargs.get("input")
    if len(eps.args) == 1 and isinstance(eps.args[0], (tuple, list, fx.Node)):
        return eps.args[0]
    return tuple(eps.args)


def _contiguous(t: torch.Tensor) -> bool:
    """Provably contiguous (symbolic sizes too, without adding guards)."""
    from torch._prims_common import is_contiguous_or_false

    return bool(is_contiguous_or_false(t))


def _only_used_by(node: fx.Node, user: fx.Node, what: str) -> str | None:
    if set(node.users) != {user}:
        return f"{what} ({node.name}) is also used elsewhere"
    return None


def _reparameterize_log_std(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """mu + exp(log_std) * eps: the reparameterisation with logvar = 2 log_std."""
    return gaussian_reparameterize(mu, log_std * 2)


def _standard_normal(size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[n, D] standard normals from the Philox sampler; ``size`` is [n, D] or a tensor of it."""
    _, d = size.shape if isinstance(size, torch.Tensor) else size
    compute = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    loc = torch.zeros(1, d, dtype=compute, device=device)
    return _sample_mixture(size, loc, 1.0, None, dtype)


def _sample_mixture(n, loc: torch.Tensor, scale, labels, dtype: torch.dtype) -> torch.Tensor:
    """loc[c] + scale * eps, c uniform over the K rows of loc (or ``labels``), in one pass.

    ``n``: the number of rows, or what `_noise_size` gives (a tensor or sizes of [n, D])."""
    if isinstance(n, torch.Tensor):
        n = n.shape[0]
    elif isinstance(n, (tuple, list, torch.Size)):
        n = n[0]
    compute = loc.dtype if loc.dtype in (torch.float32, torch.float64) else torch.float32
    loc = loc.reshape(-1, loc.shape[-1])  # a [D] mean is one component
    k, d = loc.shape
    if isinstance(scale, torch.Tensor):
        scale = scale.to(compute).expand(k, d).contiguous()
    else:
        scale = torch.full((k, d), scale, dtype=compute, device=loc.device)
    cum_weights = torch.arange(1, k + 1, dtype=compute, device=loc.device) / k
    if labels is not None:
        n = labels.shape[0]
        labels = torch.where(labels < 0, labels + k, labels)  # loc[-1] is loc's last row
    return sample_gaussian_mixture(
        n, loc.to(compute).contiguous(), scale, cum_weights, labels, dtype=dtype
    )


# ------------------------------------------------------------------------------------------------
# Safety: in-place changes and global state between a pattern's nodes.


_INPLACE_OPERATORS = {
    operator.setitem, operator.delitem, operator.iadd, operator.isub, operator.imul,
    operator.itruediv, operator.ifloordiv, operator.imod, operator.ipow, operator.imatmul,
    operator.iand, operator.ior, operator.ixor, operator.ilshift, operator.irshift,
}


def _may_mutate(node: fx.Node) -> bool:
    """Conservatively, whether a node may modify a tensor in place."""
    if node.op == "call_module":
        return True
    if node.op not in ("call_function", "call_method"):
        return False
    target = node.target
    if node.kwargs.get("inplace") is True or node.kwargs.get("out") is not None:
        return True
    if node.op == "call_function" and _inplace_argument(node):
        return True
    if node.op == "call_method":
        return isinstance(target, str) and (
            (target.endswith("_") and not target.startswith("__"))
            or target in ("__setitem__", "copy_")
        )
    try:
        if target in _INPLACE_OPERATORS:
            return True
    except TypeError:  # an unhashable target
        pass
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.is_mutable
    name = getattr(target, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


@functools.lru_cache(maxsize=None)
def _python_signature(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without one
        return None


def _inplace_argument(node: fx.Node) -> bool:
    """Whether a call's ``inplace`` parameter, positional or not, may be true: Dynamo keeps
    ``F.leaky_relu(x, 0.2, True)`` (what ``nn.LeakyReLU(0.2, inplace=True)`` calls) as written."""
    try:
        sig = _python_signature(node.target)
    except TypeError:  # an unhashable target
        return False
    if sig is None or "inplace" not in sig.parameters:
        return False
    try:
        bound = sig.bind(*node.args, **node.kwargs)
    except TypeError:
        return True  # cannot tell: assume it may
    return bound.arguments.get("inplace", False) is not False


def _position(node: fx.Node) -> int:
    return next(i for i, n in enumerate(node.graph.nodes) if n is node)


_STATEFUL_NAME = re.compile(r"(^_?set_|_enter_|_exit_|autocast|inference_mode|grad_enabled|seed)")


def _storage(value: Any) -> int | None:
    """An id of the storage a node's (fake) tensor lives in: views share their base's."""
    t = _tensor(value) if isinstance(value, fx.Node) else None
    if t is None:
        return None
    try:
        from torch.multiprocessing.reductions import StorageWeakRef

        return StorageWeakRef(t.untyped_storage()).cdata
    except Exception:  # noqa: BLE001 (no storage to compare: treated as unknown)
        return None


def _unsafe_between(first: fx.Node, last: fx.Node, reread: Iterable[Any] = ()) -> str | None:
    """Why the nodes strictly between ``first`` and ``last`` (a pattern's first and last nodes)
    may make one op computing the pattern compute something else: a change of global state (grad
    mode, autocast, inference mode, ...: nodes without users that modify no tensor), a module
    call, or an in-place op on (a view of) a tensor in ``reread`` (inputs a pattern node read
    before the op's place, which the op reads again there) or on a tensor of unknown storage.
    The op is put where the pattern's first reader of each input was, so in-place changes of the
    other inputs inside the window do not reach it. None when the window is clean."""
    storages = {_storage(i) for i in reread if isinstance(i, fx.Node)}
    node = first.next
    while node is not last and node.op != "output":
        if node.op == "call_module":
            return f"a module call ({node.name}) runs inside the pattern"
        if _may_mutate(node):
            mutated = node.kwargs.get("out")
            if mutated is None and node.args:
                mutated = node.args[0]
            storage = _storage(mutated)
            if storages and (storage is None or storage in storages):
                return f"an in-place op ({node.name}) may modify the pattern's inputs"
        elif node.op in ("call_function", "call_method"):
            target = node.target if node.op == "call_method" else _name(node)
            if not node.users or _STATEFUL_NAME.search(str(target)):
                return f"{node.name} may change global state (grad mode, autocast) in the pattern"
        node = node.next
    return None


def _mutated_after(node: fx.Node, value: fx.Node, what: str) -> str | None:
    """Why ``value`` may be modified in place after ``node``, in the rest of the graph."""
    storage = _storage(value)
    later = node.next
    while later.op != "output":
        if _may_mutate(later):
            mutated = later.kwargs.get("out")
            if mutated is None and later.args:
                mutated = later.args[0]
            target = _storage(mutated)
            if target is None or target == storage:
                return f"{what} may be modified in place later ({later.name})"
        later = later.next
    return None


def _returned(value: fx.Node) -> bool:
    """Whether ``value``, or a view of it, is among the graph's outputs."""
    storage = _storage(value)
    output = next(n for n in reversed(value.graph.nodes) if n.op == "output")
    returned: list = []
    fx.node.map_arg(output.args, returned.append)
    return any(r is value or (storage is not None and _storage(r) == storage) for r in returned)


def _alive(node: fx.Node) -> bool:
    return not getattr(node, "_erased", False)


def _loss_dtype(node: fx.Node) -> torch.dtype:
    """The dtype of the loss ops' result: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if _tensor(node).dtype == torch.float64 else torch.float32


def _fake_result(op, args: tuple) -> torch.Tensor | None:
    """The op's output on the nodes' fake values (metadata for the new node: a later pattern reads
    its dtype and shape), run in the fake mode those values belong to."""
    fakes = tuple(_meta(a) for a in args)
    mode = next((f.fake_mode for f in fakes if hasattr(f, "fake_mode")), None)
    if mode is None:
        return None
    try:
        with mode:
            return op(*fakes)
    except Exception:  # noqa: BLE001 (metadata only; the inner backend traces again)
        return None


def _register() -> None:
    """Register ``"aae_fast"`` with torch._dynamo once (a reload of this module keeps the first)."""
    from torch._dynamo.backends import registry

    compiler_fns = getattr(registry, "_COMPILER_FNS", {})
    entry_points = getattr(registry, "_BACKENDS", {})
    if BACKEND_NAME in compiler_fns or entry_points.get(BACKEND_NAME) is not None:
        return  # registered already, or by an entry point that will load this function
    try:
        registry.register_backend(aae_fast_backend, name=BACKEND_NAME)
    except AssertionError:  # "duplicate name": registered meanwhile
        pass


class _RegisterWhenDynamoLoads(importlib.abc.MetaPathFinder):
    """Registers the backend as soon as torch._dynamo has been imported, by whom ever.

    Importing torch._dynamo here would add seconds to every ``import aae_fast`` (about 40% of it,
    measured on this project's CPU), and nothing but torch.compile needs it: torch.compile imports
    it first, then looks the backend up. This one-shot finder lets the normal finders locate
    torch._dynamo and only wraps its module's execution, calling `_register` after it.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "torch._dynamo":
            return None
        _remove_hook()
        spec = importlib.util.find_spec(fullname)  # the other finders (this one is gone)
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_then_register(module):
            try:
                exec_module(module)
            finally:
                try:
                    del loader.exec_module  # the instance attribute set below
                except AttributeError:
                    pass
            try:
                _register()
            except Exception as exc:  # noqa: BLE001 (never break torch's import for this)
                warnings.warn(
                    f"aae_fast: could not register the torch.compile backend: {exc}", stacklevel=2
                )

        try:
            loader.exec_module = exec_then_register
        except AttributeError:  # a loader that takes no attributes: register on first use instead
            return spec
        return spec


_HOOK = _RegisterWhenDynamoLoads()


def _remove_hook() -> None:
    try:
        sys.meta_path.remove(_HOOK)
    except ValueError:
        pass


if "torch._dynamo" in sys.modules:
    _register()
else:
    sys.meta_path.insert(0, _HOOK)
