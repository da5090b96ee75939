"""Counter-based random state for aae_fast's sampling ops (DESIGN §5).

A `PhiloxGenerator` keeps its [seed, offset] in an int64 tensor on its device. The sampling ops read
that tensor on the device and advance the offset themselves, so sampling needs no host round trip
and a captured CUDA graph draws fresh numbers on every replay.
"""

from __future__ import annotations

import torch

_SEED_BOUND = 2**62


class PhiloxGenerator:
    """A Philox stream: [seed, offset] in an int64 device tensor, advanced by the ops that use it.

    Example:
        >>> g = PhiloxGenerator(seed=0, device="cpu")
        >>> z = aae_fast.priors.Gaussian(8).sample(100, generator=g)
    """

    def __init__(self, seed: int | None = None, device: torch.device | str = "cpu") -> None:
        if seed is None:
            seed = int(torch.randint(0, _SEED_BOUND, (1,)).item())
        _check_seed(seed)
        self.state = torch.tensor([seed, 0], dtype=torch.int64, device=device)

    @classmethod
    def wrap(cls, state: torch.Tensor) -> "PhiloxGenerator":
        """A generator whose state IS ``state`` (an int64 [seed, offset] tensor, not copied): e.g.
        a module buffer, so that ``module.to(device)`` moves the stream with the module."""
        if not (
            isinstance(state, torch.Tensor)
            and state.dtype == torch.int64
            and state.shape == (2,)
            and state.is_contiguous()
        ):
            raise ValueError(
                "state must be a contiguous int64 tensor [seed, offset] of shape (2,), got "
                f"{type(state).__name__} {getattr(state, 'dtype', '')} "
                f"{tuple(getattr(state, 'shape', ()))}"
            )
        generator = cls.__new__(cls)
        generator.state = state
        return generator

    @property
    def device(self) -> torch.device:
        return self.state.device

    def manual_seed(self, seed: int) -> "PhiloxGenerator":
        """Restarts the stream at (seed, offset 0), in place (keeps captured graphs valid)."""
        _check_seed(seed)
        self.state.copy_(torch.tensor([seed, 0], dtype=torch.int64))
        return self

    def get_state(self) -> torch.Tensor:
        """A CPU copy of [seed, offset]."""
        return self.state.detach().cpu().clone()

    def set_state(self, state: torch.Tensor) -> None:
        if not (isinstance(state, torch.Tensor) and state.dtype == torch.int64 and state.shape == (2,)):
            raise ValueError(
                "state must be an int64 tensor [seed, offset] of shape (2,), got "
                f"{type(state).__name__} {getattr(state, 'dtype', '')} {tuple(getattr(state, 'shape', ()))}"
            )
        self.state.copy_(state)

    def __repr__(self) -> str:
        seed, offset = self.get_state().tolist()
        return f"PhiloxGenerator(seed={seed}, offset={offset}, device={self.device})"


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")


def rng_state_for(generator, device: torch.device) -> torch.Tensor:
    """The [seed, offset] tensor a sampling op should consume on `device`."""
    if isinstance(generator, PhiloxGenerator):
        if generator.device != torch.device(device):
            raise ValueError(
                f"generator lives on {generator.device} but sampling happens on {device}; "
                "create the PhiloxGenerator on the sampling device"
            )
        return generator.state
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be an aae_fast.random.PhiloxGenerator, a torch.Generator or None, "
            f"got {type(generator).__name__}"
        )
    gen_device = generator.device if generator is not None else device
    seed = torch.randint(0, _SEED_BOUND, (1,), generator=generator, device=gen_device)
    return torch.cat((seed, torch.zeros_like(seed))).to(device)
