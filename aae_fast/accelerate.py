"""`accelerate(module)`: run a user's own networks on aae_fast's fused ops, parameters untouched.

Route 1 of "import as an accelerated backend" (issue 10): walk the module tree and, in every
``nn.Sequential``, replace each ``nn.Linear`` that is directly followed by a supported activation
module with one `FusedLinear` (the activation in the GEMM's epilogue, `aae_fast.ops.linear_act`)
that holds the SAME Parameter objects:

    nn.Sequential(Linear, ReLU, Dropout, Linear, Sigmoid, LayerNorm, Linear)      before
    nn.Sequential(FusedLinear(relu), AbsorbedActivation, Dropout,
                  FusedLinear(sigmoid), AbsorbedActivation, LayerNorm, Linear)    after

Supported activations: ``nn.ReLU``, ``nn.LeakyReLU`` (negative_slope >= 0), ``nn.Sigmoid``,
``nn.Tanh`` (exact classes, not subclasses). Everything else stays as it is and is reported.

Design choices
--------------
* The Sequential is edited in place, entry by entry, keeping every name: the fused layer takes the
  Linear's name, and the activation's slot gets an `AbsorbedActivation` (an ``nn.Identity`` without
  parameters that says what it stands for). State-dict keys only come from modules with parameters
  or buffers, so they do not change (``encoder.0.weight`` stays ``encoder.0.weight``), and indexing,
  ``len`` and iteration of the Sequential still work, though an entry's function changed (see the
  first caveat). (aae_fast's own models turn a whole
  ``Linear, ReLU, ..., Linear`` Sequential into a `FusedMLP` instead; that would change the type a
  user's code sees, breaking indexing, and would not work for a Sequential passed as the root.)
* A Linear with no activation after it (the last layer of an MLP, one followed by ``nn.Identity``,
  ``nn.Dropout``, ...) and a bare ``nn.Linear`` attribute are left alone: with the identity
  activation there is nothing to fuse (the op is the same GEMM plus a bias epilogue, which
  ``nn.Linear``'s addmm already does in the GEMM), and the custom op's Python-side dispatch and
  autograd cost more than ``nn.Linear``'s: on this project's 2-core CPU machine (one thread) an
  identity `FusedLinear` measured as fast as ``nn.Linear`` on a 1000x1000 layer at batch 1000 and
  80-90 us slower per forward+backward on small ones (1000->8 at batch 100, 40->40 at batch 64).
* Only what the module tree shows is converted. An activation applied in a ``forward`` (for example
  ``F.relu(self.fc(x))``) is invisible here: such Linears are reported as skipped with that reason.
  The torch.compile route (issue 10, route 2) is the one for functional code and for losses.
* Parameters are shared, never copied: an optimiser built before or after the call updates the
  same tensors, ``model.to(...)`` moves them, and ``load_state_dict`` works both ways.

Caveats
-------
* The Sequential computes what it computed, but its entries do not, one by one: the fused entry
  applies the activation, its placeholder nothing. Code that calls the entries itself sees that:
  a forward that runs ``seq[0](x)`` and uses that output beside ``seq[1](...)`` (a residual around
  the activation, pre-activation features collected layer by layer), or a slice between a Linear
  and its activation (``seq[:1]`` of ``Linear, ReLU``), now gets the activated output. Pass such
  Sequentials in ``exclude=``; only a forward that calls the Sequential as a whole is safe.
* A network differentiated twice (``create_graph=True``, e.g. a gradient penalty on the
  discriminator) works: under ``create_graph`` the fused ops compute their gradients with
  differentiable torch ops, which the second backward goes through (that backward is then as fast
  as eager's, not faster).
* The fused ops run on CPU and CUDA tensors; Linears on other devices (or meta) are skipped, and a
  model moved to another device after the call will fail there.
* Call it before ``torch.compile`` (a compiled module is skipped) and before wrapping the model in
  DDP / FSDP.
* ``aae_fast.accelerate`` is this function (the package attribute shadows this module); import
  the classes with ``from aae_fast.accelerate import AccelerationReport``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from .nn import FusedLinear, FusedMLP
from .nn.mlp import ACTIVATION_MODULES, can_absorb

__all__ = ["accelerate", "AccelerationReport", "AbsorbedActivation", "Swap", "Skip"]

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_DEVICES = ("cpu", "cuda")
_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_hooks",
    "_backward_pre_hooks",
    "_backward_hooks",
    "_state_dict_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_FUNCTIONAL_HINT = (
    "its activation, if any, is applied in a forward, which module walking cannot see "
    "(e.g. F.relu(self.fc(x))); the torch.compile route covers that"
)


class AbsorbedActivation(nn.Identity):
    """The placeholder left where an activation module was fused into the preceding layer.

    It returns its input unchanged, has no parameters or buffers, and keeps the Sequential's names
    (and so the state-dict keys) as they were."""

    def __init__(self, absorbed: str = "", into: str = "") -> None:
        super().__init__()
        self.absorbed = absorbed  # repr of the activation module that was fused
        self.into = into  # name of the fused layer (a sibling in the same Sequential)

    def extra_repr(self) -> str:
        return f"{self.absorbed} fused into [{self.into}]"


@dataclass(frozen=True)
class Swap:
    """A Linear (at ``path``) and its activation (at ``activation_path``) now one fused layer."""

    path: str
    activation_path: str
    before: str
    after: str


@dataclass(frozen=True)
class Skip:
    """A submodule left as it was, and why."""

    path: str
    module: str
    reason: str


@dataclass
class AccelerationReport:
    """What `accelerate` changed (``swapped``) and what it left alone (``skipped``, with reasons).

    Paths are qualified names as ``named_modules()`` gives them ("" is the root)."""

    swapped: list[Swap] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"aae_fast.accelerate: {len(self.swapped)} swapped, {len(self.skipped)} skipped"]
        if self.swapped:
            lines.append("swapped:")
            for s in self.swapped:
                lines.append(
                    f"  {_show(s.path)} + {_show(s.activation_path)}: {s.before} -> {s.after}"
                )
        if self.skipped:
            lines.append("skipped:")
            for s in self.skipped:
                lines.append(f"  {_show(s.path)} ({s.module}): {s.reason}")
        return "\n".join(lines)


def accelerate(
    module: nn.Module,
    *,
    verbose: bool = False,
    inplace: bool = True,
    exclude: Iterable[str] = (),
) -> nn.Module:
    """Swap the Linear + activation chains of ``module`` for fused layers sharing its Parameters.

    Args:
        module: any ``nn.Module`` (a whole model or one network).
        verbose: print the report (swapped and skipped submodules, with reasons).
        inplace: True (default): edit ``module`` itself and return it. False: leave ``module`` as it
            was and return a new module tree that shares its Parameters and buffers (the
            containers on the way to a change are shallow copies; unchanged submodules are the same
            objects in both).
        exclude: qualified names (as ``named_modules()`` gives them) of submodules to leave alone,
            with everything below them, wherever else they are reached too (a shared module); e.g.
            ``("discriminator",)`` for a network whose entries the user's code calls one by one
            (see the first caveat). A single string is one name.

    Returns:
        The accelerated module. It computes the same function (to floating-point rounding), has
        the same ``state_dict()`` keys and the same Parameter objects. Its report, an
        `AccelerationReport`, is attached as ``.aae_fast_report``.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``, or an option has the wrong type.
        ValueError: a name in ``exclude`` names no submodule.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module, got {type(module).__module__}."
            f"{type(module).__qualname__}"
        )
    for name, value in (("verbose", verbose), ("inplace", inplace)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    if isinstance(exclude, str):
        exclude = (exclude,)
    try:
        excluded = tuple(exclude)
    except TypeError:
        raise TypeError(
            f"exclude must be an iterable of qualified module names, got {type(exclude).__name__}"
        ) from None
    if not all(isinstance(e, str) for e in excluded):
        raise TypeError(f"exclude must hold strings (qualified module names), got {excluded!r}")

    excluded_ids: set[int] = set()
    for prefix in excluded:
        ids = {
            id(m)
            for name, m in module.named_modules(remove_duplicate=False)
            if prefix == "" or name == prefix or name.startswith(prefix + ".")
        }
        if not ids:
            raise ValueError(f"exclude: module has no submodule named {prefix!r}")
        excluded_ids |= ids

    walker = _Walker(inplace, excluded_ids)
    result = walker.visit(module, "", None)
    if not inplace and result is module:
        result = _shallow_clone(module)  # the argument is not touched, not even by the report
    report = AccelerationReport(walker.swapped, walker.skipped)
    object.__setattr__(result, "aae_fast_report", report)
    if verbose:
        print(report)
    return result


# ----------------------------------------------------------------------------------------------


class _Walker:
    def __init__(self, inplace: bool, excluded: set[int]) -> None:
        self.inplace = inplace
        self.excluded = excluded  # ids of the excluded modules (a shared one, wherever reached)
        self.swapped: list[Swap] = []
        self.skipped: list[Skip] = []
        # id(original) -> what replaces it: a submodule reached twice (shared) is converted once,
        # and stays shared in a copied tree.
        self.memo: dict[int, nn.Module] = {}

    def is_excluded(self, module: nn.Module) -> bool:
        return id(module) in self.excluded

    def skip(self, path: str, module: nn.Module, reason: str) -> None:
        self.skipped.append(Skip(path, type(module).__name__, reason))

    def visit(self, module: nn.Module, path: str, parent: nn.Module | None) -> nn.Module:
        key = id(module)
        if key not in self.memo:
            self.memo[key] = self._visit(module, path, parent)
        return self.memo[key]

    def _visit(self, module: nn.Module, path: str, parent: nn.Module | None) -> nn.Module:
        if self.is_excluded(module):
            self.skip(path, module, "excluded by the caller")
            return module
        opaque = _opaque(module)
        if opaque:
            self.skip(path, module, opaque)
            return module
        if isinstance(module, (FusedLinear, FusedMLP)):
            self.skip(path, module, "already an aae_fast fused module")
            return module
        if isinstance(module, AbsorbedActivation):
            return module
        if _is_plain_sequential(module):
            return self._sequential(module, path)
        children = [(n, c) for n, c in module._modules.items() if c is not None]
        if not children:
            self.skip(path, module, _leaf_reason(module, parent))
            return module
        replaced = {}
        for name, child in children:
            new = self.visit(child, _join(path, name), module)
            if new is not child:
                replaced[name] = new
        return self._rebuilt(module, replaced)

    def _sequential(self, seq: nn.Sequential, path: str) -> nn.Module:
        items = [(n, m) for n, m in seq._modules.items() if m is not None]
        replaced: dict[str, nn.Module] = {}
        j = 0
        while j < len(items):
            name, m = items[j]
            here = _join(path, name)
            if self.is_excluded(m):
                self.skip(here, m, "excluded by the caller")
                j += 1
                continue
            if isinstance(m, nn.Linear) and not _opaque(m):
                after = items[j + 1] if j + 1 < len(items) else None
                problem = _linear_problem(m) or self._activation_problem(after)
                if problem is None:
                    act_name, act = after  # type: ignore[misc]
                    activation = ACTIVATION_MODULES[type(act)]
                    slope = float(getattr(act, "negative_slope", 0.01))
                    fused = FusedLinear.from_linear(m, activation, slope)
                    fused.train(m.training)
                    placeholder = AbsorbedActivation(repr(act), name)
                    placeholder.train(act.training)
                    replaced[name], replaced[act_name] = fused, placeholder
                    self.swapped.append(
                        Swap(here, _join(path, act_name), f"{_short(m)} + {act!r}", _short(fused))
                    )
                    j += 2
                    continue
                self.skip(here, m, problem)
            elif isinstance(m, tuple(ACTIVATION_MODULES)):
                self.skip(here, m, "not directly after a convertible nn.Linear")
            else:
                new = self.visit(m, here, seq)
                if new is not m:
                    replaced[name] = new
            j += 1
        return self._rebuilt(seq, replaced)

    def _activation_problem(self, after) -> str | None:
        """Why the module after a convertible Linear cannot be absorbed (None: it can)."""
        if after is None:
            return "last module of its nn.Sequential: no activation to fuse (" + _NO_IDENTITY + ")"
        act = after[1]
        if self.is_excluded(act):
            return "the activation after it is excluded by the caller"
        opaque = _opaque(act)
        if opaque:
            return f"the {type(act).__name__} after it cannot be fused: {opaque}"
        if type(act) is nn.Identity:
            return "followed by nn.Identity: no activation to fuse (" + _NO_IDENTITY + ")"
        if type(act) not in ACTIVATION_MODULES:
            if isinstance(act, tuple(ACTIVATION_MODULES)):
                return f"followed by {type(act).__name__}, a subclass of a supported activation"
            return f"followed by {type(act).__name__}, which has no fused form"
        hooks = _hooks(act)
        if hooks:
            return f"the {type(act).__name__} after it has hooks ({hooks}) that fusing would skip"
        if not can_absorb(act):
            slope = getattr(act, "negative_slope", None)
            return f"followed by LeakyReLU(negative_slope={slope}); the fused op needs a slope >= 0"
        return None

    def _rebuilt(self, module: nn.Module, replaced: dict[str, nn.Module]) -> nn.Module:
        if not replaced:
            return module
        target = module if self.inplace else _shallow_clone(module)
        target._modules.update(replaced)  # existing names: the order is kept
        return target


_NO_IDENTITY = "an identity epilogue gains nothing over nn.Linear"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(path: str) -> str:
    return path or "(root)"


def _short(layer: nn.Module) -> str:
    """``Linear(784->1000, bias=True)`` / ``FusedLinear(784->1000, bias=True, relu)``."""
    text = f"{type(layer).__name__}({layer.in_features}->{layer.out_features}"
    text += f", bias={layer.bias is not None}"
    if isinstance(layer, FusedLinear):
        act = layer.activation
        text += f", {act}({layer.negative_slope})" if act == "leaky_relu" else f", {act}"
    return text + ")"


def _is_plain_sequential(module: nn.Module) -> bool:
    """An nn.Sequential (or a subclass) that runs its entries in order with Sequential.forward."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _hooks(module: nn.Module) -> str:
    return ", ".join(
        name.strip("_").removesuffix("s")
        for name in _HOOK_DICTS
        if getattr(module, name, None)
    )


def _opaque(module: nn.Module) -> str | None:
    """Why a module (and what is below it) must not be looked into, or None."""
    if isinstance(module, torch.jit.ScriptModule):
        return "a TorchScript module"
    dynamo = getattr(torch, "_dynamo", None)
    optimized = getattr(getattr(dynamo, "eval_frame", None), "OptimizedModule", None)
    if (optimized is not None and isinstance(module, optimized)) or getattr(
        module, "_compiled_call_impl", None
    ) is not None:
        return "compiled by torch.compile: call accelerate before compiling"
    if "forward" in vars(module):
        return "its forward is replaced on the instance (what it computes is unknown)"
    return None


def _linear_problem(linear: nn.Linear) -> str | None:
    """Why an nn.Linear cannot become a FusedLinear (None: it can)."""
    if type(linear) is not nn.Linear:
        from torch.nn.utils import parametrize

        if parametrize.is_parametrized(linear):
            return "parametrized (weight norm, spectral norm, ...): its weight is computed"
        if isinstance(linear, nn.modules.lazy.LazyModuleMixin):
            return "an uninitialised lazy module: run a forward first"
        return f"a subclass of nn.Linear ({type(linear).__name__}): it may compute something else"
    hooks = _hooks(linear)
    if hooks:
        return f"has hooks ({hooks}) that a fused layer would not run"
    params = linear._parameters
    if not isinstance(params.get("weight"), nn.Parameter) or not (
        params.get("bias") is None or isinstance(params.get("bias"), nn.Parameter)
    ):
        return "its weight or bias is not a registered nn.Parameter"
    weight = linear.weight
    if weight.device.type not in _DEVICES:
        return f"its weight is on {weight.device.type!r}; the fused ops run on cpu and cuda"
    if weight.dtype not in _DTYPES:
        return f"its weight is {weight.dtype}; the fused ops take float32/64, float16, bfloat16"
    return None


def _leaf_reason(module: nn.Module, parent: nn.Module | None) -> str:
    if isinstance(module, nn.Linear):
        problem = _linear_problem(module)
        if problem:
            return problem
        if parent is None:
            return "the root module: nothing visible follows it"
        return f"a child of {type(parent).__name__}, not of an nn.Sequential: {_FUNCTIONAL_HINT}"
    if isinstance(module, tuple(ACTIVATION_MODULES)):
        return "an activation outside an nn.Sequential: the layer it follows is not visible"
    return "no fused equivalent"


def _shallow_clone(module: nn.Module) -> nn.Module:
    """A new module object with the same attributes; its own _modules / _parameters / _buffers /
    hook dicts (so editing one tree leaves the other alone), the same tensors in them."""
    clone = copy.copy(module)
    for key, value in list(vars(clone).items()):
        if isinstance(value, (dict, set)):
            clone.__dict__[key] = copy.copy(value)
    return clone
