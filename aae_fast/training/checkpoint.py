"""Checkpoint files: written atomically, read with ``weights_only=True``.

A checkpoint is a dict (see :meth:`aae_fast.training.Trainer.state_dict`)::

    format       "aae_fast.checkpoint"
    version      1
    model_class  "aae_fast.reference.aae.AdversarialAutoencoder" (module.qualname)
    model_config the model's ``config`` dict (constructor arguments; None if it has none)
    model        model.state_dict()
    optimizers   {phase: optimizer.state_dict()}
    schedulers   {phase: scheduler.state_dict()}
    scaler       GradScaler.state_dict() or None
    trainer      epoch, global_step, batch_in_epoch, seed, precision, batch_size, history,
                 world_size (processes of a torch.distributed run; resuming needs the same), ...
    rng          torch CPU / CUDA generator states, the data loaders' generator states, and under
                 "model" the model's own counter-based stream ([seed, offset] of a fused model;
                 None for the reference); in a distributed run, "ranks" holds every rank's
                 states (gathered to rank 0, which writes the file) and each rank restores its own

Only tensors, numbers, strings, lists, tuples, dicts and None are stored, so ``torch.load(...,
weights_only=True)`` reads it: loading a checkpoint never runs code from the file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "aae_fast.checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically: into a temporary file in the same directory, flushed
    and fsynced, then ``os.replace``-d over ``path``. A crash or an interrupt leaves either the old
    file or the new one, never a torn one. Creates missing parent directories. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name, created exclusively, with the mode open() gives (0666 less the umask), as the
    # other files of a run directory have: mkstemp's would be private (0600).
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors mapped to ``map_location``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not an aae_fast checkpoint, or of an unknown version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(
            f"checkpoint: {path} is not a readable aae_fast checkpoint ({exc})"
        ) from exc
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint: {path} is not an aae_fast checkpoint (expected format "
            f"{CHECKPOINT_FORMAT!r}, got {found!r})"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint: {path} has version {state.get('version')!r}; this aae_fast reads "
            f"version {CHECKPOINT_VERSION}"
        )
    return state
