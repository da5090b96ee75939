"""backend_info(), the schema mirror of the fallback, and the pure-PyTorch fallback itself."""

import json
import os
import subprocess
import sys

import pytest
import torch

import aae_fast as af
from aae_fast._schemas import SCHEMAS

# Ops whose autograd formula the extension implements in C++ (csrc/autograd/); other
# differentiable ops (gaussian_reparameterize, ...) keep their Python formula
# (torch.library.register_autograd), and the backward ops and samplers have none.
CPP_AUTOGRAD_OPS = {"linear_act", "adversarial_d_loss", "adversarial_g_loss", "reconstruction_loss", "mmd",
                    "gaussian_reparameterize"}


def test_backend_info_reports_extension_and_triton():
    info = af.backend_info()
    assert set(info) >= {"version", "torch", "triton", "cpu_ext", "cuda_ext", "triton_enabled", "device", "ops"}
    assert info["torch"] == torch.__version__
    # The suite runs against a built extension: CI builds it first, so its absence is a failure.
    assert info["cpu_ext"], f"C++ extension not loaded: {info['extension_error']}"
    assert info["triton"] is not None
    # Under the interpreter (set by conftest without CUDA) or on a GPU, Triton kernels can run.
    assert info["triton_enabled"]
    for name in SCHEMAS:
        assert info["ops"][name]["cpu"] == "cpp"
        if torch.cuda.is_available():
            assert info["ops"][name]["cuda"] in ("cuda", "triton")
        else:
            assert info["ops"][name]["cuda"] is None
        if name in CPP_AUTOGRAD_OPS:
            assert info["ops"][name]["autograd"] == "cpp", name
        elif name.endswith("_backward") or name.startswith("sample_") or name == "parzen_log_likelihood":
            assert info["ops"][name]["autograd"] is None, name
        else:
            assert info["ops"][name]["autograd"] in ("python", None), name


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_python_schema_mirror_equals_extension_schema(name):
    registered = str(getattr(torch.ops.aae_fast, name).default._schema)
    assert registered == "aae_fast::" + SCHEMAS[name]


FALLBACK_SCRIPT = r"""
import json, warnings, torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import aae_fast as af
    import aae_fast.priors  # a second import must not warn again
info = af.backend_info()
p = af.priors.MixtureOfGaussians()
g = af.PhiloxGenerator(seed=7)
z = p.sample(33, labels=torch.arange(33) % 10, generator=g)
y = af.priors.Categorical(4).sample(9, generator=af.PhiloxGenerator(seed=3))
r = af.priors.SwissRoll().sample(5, generator=af.PhiloxGenerator(seed=1))
print(json.dumps({
    "warnings": [str(w.message) for w in caught if "aae_fast" in str(w.message)],
    "cpu_ext": info["cpu_ext"], "ops": info["ops"], "error": info["extension_error"],
    "z": z.tolist(), "y": y.tolist(), "r": r.tolist(), "state": g.get_state().tolist(),
}))
"""


def test_pure_pytorch_fallback_when_extension_disabled():
    env = dict(os.environ, AAE_FAST_DISABLE_EXT="1")
    done = subprocess.run(
        [sys.executable, "-c", FALLBACK_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["cpu_ext"] is False
    assert "AAE_FAST_DISABLE_EXT" in out["error"]
    assert all(v["cpu"] == "composite" for v in out["ops"].values())
    # Without _C every differentiable op falls back to its Python autograd formula.
    for name in CPP_AUTOGRAD_OPS:
        assert out["ops"][name]["autograd"] == "python", name
    assert len(out["warnings"]) == 1, out["warnings"]
    # The composite draws the same stream as the C++ kernels.
    g = af.PhiloxGenerator(seed=7)
    z = af.priors.MixtureOfGaussians().sample(33, labels=torch.arange(33) % 10, generator=g)
    torch.testing.assert_close(torch.tensor(out["z"]), z, atol=1e-5, rtol=1e-5)
    y = af.priors.Categorical(4).sample(9, generator=af.PhiloxGenerator(seed=3))
    assert torch.equal(torch.tensor(out["y"]), y)
    r = af.priors.SwissRoll().sample(5, generator=af.PhiloxGenerator(seed=1))
    torch.testing.assert_close(torch.tensor(out["r"]), r, atol=1e-5, rtol=1e-5)
    assert out["state"] == g.get_state().tolist()


@pytest.mark.parametrize(
    "module, ops",
    [
        ("linear_act", {"linear_act", "linear_act_backward"}),
        ("gaussian_reparameterize", {"gaussian_reparameterize", "gaussian_reparameterize_backward"}),
        ("adversarial_loss", {"adversarial_d_loss", "adversarial_d_loss_backward",
                              "adversarial_g_loss", "adversarial_g_loss_backward"}),
        ("reconstruction_loss", {"reconstruction_loss", "reconstruction_loss_backward"}),
        ("parzen_log_likelihood", {"parzen_log_likelihood"}),
        ("mmd", {"mmd", "mmd_backward"}),
        ("prior_sample", {"sample_gaussian_mixture", "sample_swiss_roll", "sample_categorical"}),
    ],
)
def test_triton_launchers_exist_for_every_op(module, ops, monkeypatch):
    """What each op module registers for CUDA tensors when a GPU is present: a Triton launcher per
    op, each a callable of the kernels package. Checked here with CUDA faked, so that a launcher
    table naming a function the kernels do not have fails on a CPU machine too, not at import on
    the first GPU (it once did)."""
    import importlib

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    launchers = importlib.import_module(f"aae_fast.ops.{module}")._triton_launchers()
    assert set(launchers) == ops
    assert all(callable(fn) for fn in launchers.values())


_RAISE_SCRIPT = r"""
import sys, torch, aae_fast
device = sys.argv[1]
try:
    torch.ops.aae_fast.mmd(torch.randn(0, 3, device=device), torch.randn(5, 3, device=device), [1.0], False)
except RuntimeError as e:
    print("raised:", e)
"""


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_errors_raised_in_the_extension_reach_python(device):
    """A TORCH_CHECK failing inside _C becomes a RuntimeError, in a fresh process (on the
    2026-11-26 H200 image it killed the process with SIGSEGV instead: scripts/probe_ext_errors.sh)."""
    done = subprocess.run([sys.executable, "-c", _RAISE_SCRIPT, device], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"
    assert "raised: x must hold at least 1 sample" in done.stdout, done.stdout
