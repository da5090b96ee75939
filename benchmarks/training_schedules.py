"""Training schedules of an adversarial autoencoder step, and their analytic FLOP counts.

`naive_training_step` is the step a typical user writes from the paper's description (Makhzani et
al., 2015, §2): three phases, each with its own forward passes and nothing shared. The reference
model's `training_step` (aae_fast.reference) is the "best user's" schedule of the same update: the
regularization phase reuses one encoder forward for the discriminator and the generator steps, runs
the discriminator once over [prior samples; codes], and freezes the discriminator while the encoder
plays the generator. Both give the same parameters after a step; only the work differs.

`step_flops(model, schedule)` counts the GEMM FLOPs per sample of one step from the `nn.Linear`
layers of each network. A Linear layer [in, out] costs, per row, 2 in out for the forward, 2 in out
for the input gradient and 2 in out for the weight gradient. Bias adds, activations, losses and the
optimiser are not counted (under 0.1% here). Which passes run:

    phase           naive (a typical user)                 best (aae_fast.reference)
    reconstruction  E fwd, D_ec fwd; D_ec igrad + wgrad;   the same
                    E wgrad + igrad (not E's first layer:
                    x needs no gradient)
    discriminator   E fwd (no grad), D fwd + wgrad on      E fwd (its codes are kept for the G
                    2N rows (prior samples and codes),     phase), D as naive on 2N rows
                    D igrad on 2N rows except its first
                    layer (its inputs are detached)
    generator       E fwd again, D fwd, D igrad AND        D fwd on the kept codes, D igrad only
                    wgrad (thrown away by zero_grad),      (D frozen), E wgrad + igrad
                    E wgrad + igrad (not the first layer)
    classification  E fwd, E wgrad + igrad (not the        the same
    (semi-sup.)     first layer) on the labelled batch

(E encoder, D_ec decoder, D discriminator(s); N rows per batch; the semi-supervised model has two
discriminators, on y and on z, each doing D's work; its labelled batch has as many rows as the
main one, the Trainer's default, and is counted per sample of the main batch.)

Per sample, for the defaults (GEMM FLOPs; 1 MFLOP = 1e6):

    model                                      naive          best (reference, fused)
    AdversarialAutoencoder()                   50.834 MFLOP   45.232 MFLOP  (-11.0%)
      784-1000-1000-8, D 8-1000-1000-1
      by phase: reconstruction                 19.936         19.936
                discriminator                  15.660         15.660
                generator                      15.238          9.636
    SemiSupervisedAAE()                        78.516 MFLOP   70.864 MFLOP  (-9.7%)
      784-1000-1000-(10+10), D_y, D_z 10-1000-1000-1
      by phase: reconstruction                 20.080         20.080
                discriminator (y and z)        27.792         27.792
                generator (y and z)            21.388         13.736
                classification                  9.256          9.256

The naive schedule's extra work over the best one is one encoder forward (3.584 MFLOP) and the
discriminator's weight gradients in the generator phase (2.018 MFLOP) for the AAE. (Counting the
input gradient of the first encoder layer too, which autograd skips since x needs no gradient,
would add 2 x 1.568 MFLOP: 53.97 MFLOP for the naive AAE.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aae_fast.reference._common import FP32

__all__ = ["naive_training_step", "step_flops", "phase_flops", "SCHEDULES", "linear_shapes"]

#: Schedules `step_flops` knows. "best" is the reference model's training_step (and the fused
#: model's, which computes the same passes).
SCHEDULES = ("naive", "best")


def linear_shapes(net: nn.Module) -> list[tuple[int, int]]:
    """(in_features, out_features) of every nn.Linear in `net`, in order.

    A network without nn.Linear modules (a fused twin) is read from its 2-D ``weight`` parameters
    [out, in] instead: the fused models keep the reference's state-dict keys and shapes."""
    shapes = [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]
    if not shapes:
        shapes = [
            (p.shape[1], p.shape[0])
            for name, p in net.named_parameters()
            if name.rsplit(".", 1)[-1] == "weight" and p.dim() == 2
        ]
    if not shapes:
        raise ValueError(f"{type(net).__name__} holds no linear layers")
    return shapes


def _fwd(net) -> int:
    """FLOPs per row of the forward (= of the weight gradient)."""
    return sum(2 * i * o for i, o in linear_shapes(net))


def _igrad(net, first_layer: bool) -> int:
    """FLOPs per row of the input gradients; `first_layer=False`: the first layer's is skipped
    (its input needs no gradient)."""
    shapes = linear_shapes(net)
    return sum(2 * i * o for i, o in (shapes if first_layer else shapes[1:]))


def _networks(model):
    discriminators = (
        [model.discriminator_y, model.discriminator_z]
        if hasattr(model, "discriminator_y")
        else [model.discriminator]
    )
    return model.encoder, model.decoder, discriminators


def phase_flops(model, schedule: str) -> dict[str, int]:
    """GEMM FLOPs per sample of each phase of one training step (see the module docstring)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    enc, dec, discs = _networks(model)
    e_fwd = _fwd(enc)
    e_bwd = _fwd(enc) + _igrad(enc, first_layer=False)  # weight grads + input grads
    phases = {
        "reconstruction": e_fwd + _fwd(dec) + 2 * _fwd(dec) + e_bwd,
        # 2N rows through each discriminator: forward, weight grads, input grads (not the first).
        "discriminator": e_fwd
        + sum(2 * (2 * _fwd(d) + _igrad(d, first_layer=False)) for d in discs),
    }
    g_disc = sum(_fwd(d) + _igrad(d, first_layer=True) for d in discs)
    if schedule == "naive":  # a third encoder forward; D's weight gradients computed then dropped
        phases["generator"] = e_fwd + g_disc + sum(_fwd(d) for d in discs) + e_bwd
    else:
        phases["generator"] = g_disc + e_bwd
    if getattr(model, "classification_phase", False):
        phases["classification"] = e_fwd + e_bwd  # labelled batch: as many rows as the main one
    return phases


def step_flops(model, schedule: str) -> int:
    """GEMM FLOPs per sample of one `training_step` under `schedule` ("naive" or "best"), counted
    from the nn.Linear layers of the model's networks (table in the module docstring)."""
    return sum(phase_flops(model, schedule).values())


def naive_training_step(model, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
    """One step of the paper's alternation written the straightforward way, over a reference
    `AdversarialAutoencoder` (deterministic encoder, BCE reconstruction, no label conditioning and
    no input noise): the same update as `model.training_step`, with more work.

    1. reconstruction: encoder + decoder forward, backward, step;
    2. discriminator: a fresh encoder forward under no_grad, D applied to the prior samples and to
       the codes separately, backward, step;
    3. generator: a third encoder forward, D forward and backward with D's weight gradients
       computed (D is not frozen; the next zero_grad discards them), step of the encoder.
    """
    if getattr(model, "encoder_kind", None) != "deterministic" or model.label_conditioned:
        raise ValueError("naive_training_step is written for the unsupervised deterministic AAE")
    if model.reconstruction != "bce" or model.input_noise_std:
        raise ValueError("naive_training_step assumes reconstruction='bce' and no input noise")
    amp = amp or FP32()
    x = batch["x"]
    n = x.shape[0]

    def update(loss, opt):
        amp.backward(loss)
        amp.step(opt)

    # 1. Reconstruction phase.
    opt = optimizers["autoencoder"]
    opt.zero_grad()
    with amp.autocast():
        logits = model.decoder(model.encoder(x))
        rec = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="sum") / n
    update(rec, opt)

    # 2. Discriminator phase: prior samples are "real", codes "fake".
    opt = optimizers["discriminator"]
    opt.zero_grad()
    with amp.autocast():
        with torch.no_grad():
            z_fake = model.encoder(x)
        z_real = model.prior.sample(n, device=x.device, dtype=x.dtype, backend="eager")
        real = model.discriminator(z_real).float()
        fake = model.discriminator(z_fake).float()
        d = F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    update(d, opt)

    # 3. Generator phase: the encoder fools the updated discriminator.
    opt = optimizers["generator"]
    opt.zero_grad()
    with amp.autocast():
        fake = model.discriminator(model.encoder(x)).float()
        g = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    update(g, opt)
    return {"reconstruction": rec.detach(), "discriminator": d.detach(), "generator": g.detach()}
