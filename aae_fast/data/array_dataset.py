"""An in-memory labelled image data set held as two tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["ArrayDataset"]


@dataclass(eq=False, repr=False)
class ArrayDataset:
    """Flattened images and their labels, as tensors on one device.

    Attributes:
        images: ``[N, D]`` floating tensor (``D = 784`` for 28x28 images),
            values in ``[0, 1]`` for data sets read by
            :func:`~aae_fast.data.load_dataset`.
        labels: ``[N]`` int64 tensor of class indices in ``[0, num_classes)``.
        num_classes: number of classes (10 for MNIST and Fashion-MNIST).
        name: a short description of the source, e.g. ``"fashion-mnist"``.
        image_shape: the shape each row of ``images`` unflattens to, e.g.
            ``(28, 28)``; used for figures.

    Construction checks shapes, dtypes and devices only; it never reads label
    values (that would synchronise a CUDA device).
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str = "dataset"
    image_shape: tuple[int, ...] = field(default=(28, 28))

    def __post_init__(self) -> None:
        if self.images.dim() != 2:
            raise ValueError(f"images must have shape [N, D], got {tuple(self.images.shape)}")
        if not self.images.is_floating_point():
            raise ValueError(f"images must be a floating tensor, got {self.images.dtype}")
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"labels must have shape [N] = [{self.images.shape[0]}], "
                f"got {tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64, got {self.labels.dtype}")
        if self.images.device != self.labels.device:
            raise ValueError(
                f"images and labels must be on one device, got {self.images.device} "
                f"and {self.labels.device}"
            )
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {self.num_classes}")
        self.image_shape = tuple(int(s) for s in self.image_shape)
        if self.image_shape and math.prod(self.image_shape) != self.images.shape[1]:
            raise ValueError(
                f"image_shape {self.image_shape} does not hold {self.images.shape[1]} features"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"features={self.num_features}, num_classes={self.num_classes}, "
            f"dtype={self.images.dtype}, device={self.device})"
        )

    @property
    def num_features(self) -> int:
        """``D``, the length of one flattened image."""
        return self.images.shape[1]

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)``."""
        return self.images, self.labels

    def to(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        non_blocking: bool = False,
    ) -> ArrayDataset:
        """Return a copy on ``device`` with images of ``dtype`` (self if nothing changes).

        Labels keep dtype int64.
        """
        images = self.images.to(device=device, dtype=dtype, non_blocking=non_blocking)
        labels = self.labels.to(device=device, non_blocking=non_blocking)
        if images is self.images and labels is self.labels:
            return self
        return self._replace(images, labels)

    def subset(self, indices: torch.Tensor) -> ArrayDataset:
        """Return the rows ``indices`` (a 1-D integer tensor on any device) as a new data set."""
        indices = indices.to(device=self.device, dtype=torch.int64)
        return self._replace(
            self.images.index_select(0, indices), self.labels.index_select(0, indices)
        )

    def _replace(self, images: torch.Tensor, labels: torch.Tensor) -> ArrayDataset:
        return type(self)(images, labels, self.num_classes, self.name, self.image_shape)

