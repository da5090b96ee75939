"""The paper's points of comparison, trained by the same Trainer and CLI and evaluated by the same
protocol as the AAE (``aae-fast train --model vae`` / ``--model gmmn-ae``):

- :class:`VAE`: the variational autoencoder (KL term; needs the prior's density), §2.1 and Fig. 2;
- :class:`GMMNAutoencoder`: GMMN+AE, an autoencoder and a moment-matching generator of its codes
  (``af.ops.mmd``), Table 1.

They have one implementation each (eager networks; the GMMN's MMD is the fused op), so
``backend`` does not apply to them.
"""

from .gmmn import GMMNAutoencoder
from .vae import VAE

__all__ = ["VAE", "GMMNAutoencoder"]
