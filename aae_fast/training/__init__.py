"""Training: :class:`Trainer` (the loop, mixed precision, logging, checkpoints, exact resume) and
atomic checkpoint files.

Example::

    import aae_fast.reference as ref
    from aae_fast.data import load_dataset, labelled_subset
    from aae_fast.training import Trainer

    train = load_dataset("fashion-mnist", "train")
    labelled, _ = labelled_subset(train, labels_per_class=100, seed=0)
    model = ref.SemiSupervisedAAE()
    trainer = Trainer(model, labelled_data=labelled, out_dir="runs/ssl", checkpoint_every=1000)
    history = trainer.fit(train, epochs=10, val_data=load_dataset("fashion-mnist", "test"))
    # later: Trainer.resume("runs/ssl/checkpoint.pt", ref.SemiSupervisedAAE(),
    #                       labelled_data=labelled).fit(train, epochs=20)

Data-parallel (``torchrun --nproc-per-node N script.py``; see :mod:`.distributed`)::

    from aae_fast.training import Trainer, init_distributed

    context = init_distributed("cpu")   # gloo on CPU, NCCL on CUDA; None without torchrun
    trainer = Trainer(model, batch_size=100, out_dir="runs/ddp")  # 100 rows per rank and step
    trainer.fit(train, epochs=10)       # every rank; rank 0 writes the checkpoints
"""

from . import distributed
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from .distributed import destroy_distributed, init_distributed, rank_seed
from .trainer import CHECKPOINT_NAME, PRECISIONS, Trainer

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "CHECKPOINT_VERSION",
    "PRECISIONS",
    "Trainer",
    "destroy_distributed",
    "distributed",
    "init_distributed",
    "load_checkpoint",
    "rank_seed",
    "save_checkpoint",
]
