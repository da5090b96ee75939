"""Figures for an AAE run: latent codes, samples from the prior, reconstructions, style grids.

Every function draws on a standalone :class:`matplotlib.figure.Figure` attached to an Agg canvas:
pyplot is never imported, so nothing is shown, no global backend is switched, and no figure is left
registered anywhere (each figure is cleared after saving). Every function creates the parent
directories of ``path``, writes a PNG (or whatever the suffix of ``path`` names) and returns the
:class:`pathlib.Path` it wrote.

Inputs may be torch tensors on any device (detached and copied to the CPU) or numpy arrays.
Images are ``[N, H*W]`` rows (square images, e.g. 784 = 28 x 28, unless ``image_shape`` is given),
``[N, H, W]`` or ``[N, 1, H, W]``, read row-major as the IDX files store them, so a digit stands
upright. Pixel values in [0, 1] are shown as they are (0 black, 1 white); anything else is scaled
from its min-max range. Decoder logits should go through a sigmoid first.

Latent codes of more than two dimensions are projected on their first two principal components
(an exact SVD of the centred codes, in float64); the title says so and gives the variance the two
components explain.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._checks import positive_int

__all__ = [
    "pca_2d",
    "plot_image_grid",
    "plot_latent",
    "plot_latent_panels",
    "plot_prior_and_codes",
    "plot_reconstructions",
    "plot_style_grid",
]

DEFAULT_DPI = 120
# Labels with at most this many distinct integer values get one colour each and a legend; more
# (or float labels) get a continuous colour map and a colour bar.
_MAX_LEGEND_CLASSES = 20
# Mosaic figures: each image cell is drawn about this many screen pixels wide, at an integer
# magnification where possible, and the whole mosaic is kept under _MAX_MOSAIC_PX pixels.
_TARGET_CELL_PX = 64
_MAX_MOSAIC_PX = 2400
_PAD_PX = 2
_PAD_VALUE = 0.5  # mid grey between the cells: separates both dark and light images


# --------------------------------------------------------------------------------------------
# helpers


def _to_numpy(value: object, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.numpy()
    try:
        return np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be a tensor or array, got {type(value).__name__}") from err


def _codes(value: object, name: str) -> np.ndarray:
    a = _to_numpy(value, name)
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape [N, D] with D >= 1, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def _labels(value: object, n: int, name: str = "labels") -> np.ndarray | None:
    if value is None:
        return None
    a = _to_numpy(value, name)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name} must have shape [{n}] (one per code), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    return a


def _class_names(classes: np.ndarray, label_names: Sequence[str] | None) -> list[str]:
    """Legend names of the distinct labels ``classes``: ``label_names[label]``, or the label."""
    if label_names is None:
        return [str(c) for c in classes]
    outside = [c for c in classes.tolist() if not 0 <= c < len(label_names)]
    if outside:
        raise ValueError(
            f"label_names has {len(label_names)} names, so labels must lie in "
            f"[0, {len(label_names)}); got labels {outside[:5]}"
        )
    return [str(label_names[int(c)]) for c in classes]


def _figure(figsize: tuple[float, float], dpi: float) -> Figure:
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=fig.dpi)
    finally:
        fig.clear()
    return path


def pca_2d(codes: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The first two principal components of ``codes`` ``[N, D]`` (N >= 2, D >= 2), by exact SVD.

    Returns:
        ``(projected [N, 2], mean [D], components [2, D], explained)``: ``projected = (codes -
        mean) @ components.T``, and ``explained`` is the fraction of the total variance the two
        components carry. Each component's sign is fixed (its largest-magnitude loading is
        positive) so the picture does not flip between runs.
    """
    a = torch.from_numpy(np.ascontiguousarray(_codes(codes, "codes")))
    if a.shape[1] < 2 or a.shape[0] < 2:
        raise ValueError(
            "codes must have N >= 2 rows and D >= 2 columns for a 2-D principal-component "
            f"projection, got shape {tuple(a.shape)}"
        )
    mean = a.mean(dim=0)
    centred = a - mean
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:2].clone()
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    comps *= torch.where(signs == 0, torch.ones_like(signs), signs)
    total = float(s.square().sum())
    explained = float(s[:2].square().sum()) / total if total > 0 else 1.0
    return (centred @ comps.T).numpy(), mean.numpy(), comps.numpy(), explained


def _project(codes: np.ndarray) -> tuple[np.ndarray, str, tuple[str, str], tuple]:
    """2-D view of codes: (xy, title suffix, axis labels, (mean, components) or None)."""
    d = codes.shape[1]
    if d == 2:
        return codes, "", ("z[0]", "z[1]"), None
    xy, mean, comps, explained = pca_2d(codes)
    suffix = f"PCA of {d}-D codes, {100 * explained:.0f}% of variance"
    return xy, suffix, ("PC 1", "PC 2"), (mean, comps)


def _title(title: str | None, suffix: str) -> str | None:
    if title and suffix:
        return f"{title}\n({suffix})"
    return title or (f"({suffix})" if suffix else None)


def _is_categorical(labels: np.ndarray) -> bool:
    if labels.dtype == np.bool_ or np.issubdtype(labels.dtype, np.integer):
        return len(np.unique(labels)) <= _MAX_LEGEND_CLASSES
    return False


def _class_colours(k: int) -> list:
    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i) for i in range(k)]


def _marker_size(n: int) -> float:
    return float(np.clip(20000.0 / max(n, 1), 2.0, 25.0))


def _scatter_codes(
    fig: Figure,
    ax,
    xy: np.ndarray,
    labels: np.ndarray | None,
    label_names: Sequence[str] | None,
    extra_handles: list | None = None,
) -> None:
    """Scatter xy coloured by labels; legend (outside the axes, right) or colour bar."""
    n = xy.shape[0]
    size = _marker_size(n)
    # A fixed shuffle of the drawing order: no class is systematically drawn over the others.
    order = np.random.default_rng(0).permutation(n)
    handles = list(extra_handles or [])
    if labels is None:
        ax.scatter(xy[order, 0], xy[order, 1], s=size, c="tab:blue", alpha=0.6, linewidths=0)
    elif _is_categorical(labels):
        classes = np.unique(labels)
        colours = _class_colours(len(classes))
        index = np.searchsorted(classes, labels)
        ax.scatter(
            xy[order, 0], xy[order, 1], s=size, alpha=0.7, linewidths=0,
            c=np.asarray(colours)[index[order]],
        )
        for name, colour in zip(_class_names(classes, label_names), colours):
            handles.append(
                Line2D([], [], marker="o", linestyle="", markersize=7, color=colour, label=name)
            )
    else:
        mappable = ax.scatter(
            xy[order, 0], xy[order, 1], s=size, c=labels[order].astype(np.float64),
            cmap="viridis", alpha=0.7, linewidths=0,
        )
        fig.colorbar(mappable, ax=ax, label="label", shrink=0.85)
    if handles:
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
            frameon=False, title="label" if labels is not None else None,
        )


# --------------------------------------------------------------------------------------------
# latent codes


def plot_latent(
    codes: object,
    labels: object | None,
    path: str | Path,
    title: str | None = "Latent codes",
    *,
    label_names: Sequence[str] | None = None,
    figsize: tuple[float, float] = (7.0, 6.0),
    dpi: float = DEFAULT_DPI,
) -> Path:
    """Scatter plot of latent codes, coloured by label.

    Args:
        codes: ``[N, D]``. D = 2 is drawn as is; D > 2 on its first two principal components
            (the title says so); D = 1 as a histogram (stacked by label).
        labels: ``[N]`` or None. Integer labels with at most 20 distinct values get a colour each
            and a legend to the right of the axes; other labels a continuous colour map and a
            colour bar.
        path: output file.
        title: figure title (None for none).
        label_names: names of the integer labels (``label_names[label]``), for the legend.
        figsize, dpi: the image is ``figsize * dpi`` pixels.

    Returns:
        The path written.
    """
    c = _codes(codes, "codes")
    lab = _labels(labels, c.shape[0])
    fig = _figure(figsize, dpi)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    if c.shape[1] == 1:
        if lab is not None and _is_categorical(lab):
            classes = np.unique(lab)
            names = _class_names(classes, label_names)
            ax.hist([c[lab == k, 0] for k in classes], bins=50, stacked=True,
                    color=_class_colours(len(classes)), label=names)
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, title="label")
        else:
            ax.hist(c[:, 0], bins=50, color="tab:blue")
        ax.set_xlabel("z[0]")
        ax.set_ylabel("count")
    else:
        xy, suffix, (xlabel, ylabel), _ = _project(c)
        _scatter_codes(fig, ax, xy, lab, label_names)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_aspect("equal", adjustable="datalim")
        title = _title(title, suffix)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_latent_panels(
    panels: Sequence[tuple[str, object, object | None]],
    path: str | Path,
    title: str | None = None,
    *,
    ncols: int = 2,
    label_names: Sequence[str] | None = None,
    panel_size: float = 4.0,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """Several 2-D code scatter plots side by side, one legend: e.g. the paper's Figure 2 (AAE vs
    VAE codes of the test set under each prior).

    Args:
        panels: ``(panel title, codes [N, 2], labels [N] or None)`` each; codes of more than two
            dimensions are drawn on their first two principal components (said in the title).
        path: output file.
        title: figure title (None for none).
        ncols: panels per row.
        label_names, dpi: as :func:`plot_latent`; ``panel_size``: inches per panel side.

    Returns:
        The path written.
    """
    if not panels:
        raise ValueError("panels must hold at least one (title, codes, labels) entry, got none")
    ncols = positive_int(ncols, "ncols")
    nrows = -(-len(panels) // ncols)
    cols = min(ncols, len(panels))
    fig = _figure((panel_size * cols + 1.5, panel_size * nrows + 0.6), dpi)
    fig.set_layout_engine("constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    handles: dict[str, Line2D] = {}
    for ax, (panel_title, codes, labels) in zip(axes, panels):
        c = _codes(codes, f"codes of panel {panel_title!r}")
        if c.shape[1] < 2:
            raise ValueError(f"codes of panel {panel_title!r} must have >= 2 columns, got {c.shape[1]}")
        lab = _labels(labels, c.shape[0])
        xy, suffix, (xlabel, ylabel), _ = _project(c)
        _scatter_codes(fig, ax, xy, lab, label_names)
        legend = ax.get_legend()
        if legend is not None:  # one legend for the figure, built from the panels' entries
            for handle in legend.legend_handles:
                handles.setdefault(handle.get_label(), handle)
            legend.remove()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(_title(panel_title, suffix))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if handles:
        fig.legend(handles=list(handles.values()), loc="outside right upper", frameon=False, title="label")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_prior_and_codes(
    prior_samples: object,
    codes: object,
    labels: object | None,
    path: str | Path,
    title: str | None = "Prior samples and encoded data",
    *,
    label_names: Sequence[str] | None = None,
    figsize: tuple[float, float] = (7.0, 6.0),
    dpi: float = DEFAULT_DPI,
) -> Path:
    """Prior samples (light grey, underneath) overlaid with the codes of the data (coloured).

    Shows how well the aggregated posterior matches the prior. For D > 2 both are projected on
    the first two principal components of ``codes``.

    Args:
        prior_samples: ``[M, D]`` draws from the prior.
        codes: ``[N, D]`` encoded data.
        labels: ``[N]`` or None, as in :func:`plot_latent`.
        path, title, label_names, figsize, dpi: as in :func:`plot_latent`.

    Returns:
        The path written.
    """
    c = _codes(codes, "codes")
    p = _codes(prior_samples, "prior_samples")
    if p.shape[1] != c.shape[1]:
        raise ValueError(
            f"prior_samples and codes must have the same dimension D: prior_samples has shape "
            f"{p.shape}, codes has shape {c.shape}"
        )
    if c.shape[1] < 2:
        raise ValueError(f"codes must have D >= 2 for an overlay, got shape {c.shape}")
    lab = _labels(labels, c.shape[0])
    xy, suffix, (xlabel, ylabel), transform = _project(c)
    pxy = p if transform is None else (p - transform[0]) @ transform[1].T
    fig = _figure(figsize, dpi)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    ax.scatter(pxy[:, 0], pxy[:, 1], s=_marker_size(len(pxy)), c="0.75", alpha=0.5,
               linewidths=0, zorder=0)
    prior_handle = Line2D([], [], marker="o", linestyle="", markersize=7, color="0.75",
                          label="prior")
    _scatter_codes(fig, ax, xy, lab, label_names, extra_handles=[prior_handle])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="datalim")
    title = _title(title, suffix)
    if title:
        ax.set_title(title)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# images


def _images(value: object, name: str, image_shape: tuple[int, int] | None,
            lead_dims: int = 1) -> np.ndarray:
    """To float [*lead, H, W]; ``lead_dims`` leading batch dimensions ([N] or [S, C])."""
    a = _to_numpy(value, name)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    lead = a.shape[:lead_dims]
    rest = a.shape[lead_dims:]
    want = "[N, H*W], [N, H, W] or [N, 1, H, W]" if lead_dims == 1 else \
        "[S, C, H*W], [S, C, H, W] or [S, C, 1, H, W]"
    if len(lead) != lead_dims or any(k == 0 for k in lead):
        raise ValueError(f"{name} must have shape {want} with non-empty leading dims, "
                         f"got shape {a.shape}")
    if len(rest) == 1:
        if image_shape is None:
            side = math.isqrt(rest[0])
            if side * side != rest[0]:
                raise ValueError(
                    f"{name} has {rest[0]} features per image, not a square number: "
                    "pass image_shape=(H, W)"
                )
            image_shape = (side, side)
        if image_shape[0] * image_shape[1] != rest[0]:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold the {rest[0]} "
                             f"features per image of {name}")
        return a.reshape(*lead, *image_shape)
    if len(rest) == 3 and rest[0] == 1:
        return a.reshape(*lead, rest[1], rest[2])
    if len(rest) == 2:
        return a
    raise ValueError(f"{name} must have shape {want}, got shape {a.shape}")


def _normalise(a: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    if value_range is None:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo >= -1e-6 and hi <= 1 + 1e-6:
            lo, hi = 0.0, 1.0
    else:
        lo, hi = value_range
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _mosaic(cells: np.ndarray, row_gaps: Sequence[int] | None = None) -> tuple[np.ndarray, list]:
    """Tile [R, C, H, W] (NaN = empty cell) into one image with _PAD_PX separators.

    ``row_gaps[r]``: extra padding (pixels) above row r. Returns (image, row centres in px).
    """
    r, c, h, w = cells.shape
    gaps = list(row_gaps) if row_gaps is not None else [0] * r
    height = _PAD_PX + sum(h + _PAD_PX + g for g in gaps)
    width = _PAD_PX + c * (w + _PAD_PX)
    out = np.full((height, width), _PAD_VALUE)
    centres = []
    y = _PAD_PX
    for i in range(r):
        y += gaps[i]
        for j in range(c):
            x = _PAD_PX + j * (w + _PAD_PX)
            out[y : y + h, x : x + w] = cells[i, j]
        centres.append(y + h / 2)
        y += h + _PAD_PX
    out = np.where(np.isnan(out), _PAD_VALUE, out)
    return out, centres


def _show_mosaic(
    mosaic: np.ndarray,
    cell_px: int,
    title: str | None,
    dpi: float,
    figsize: tuple[float, float] | None,
    col_labels: Sequence[str] | None = None,
    col_centres: Sequence[float] | None = None,
    row_labels: Sequence[str] | None = None,
    row_centres: Sequence[float] | None = None,
) -> Figure:
    """A figure holding ``mosaic`` (cells ``cell_px`` pixels apart) at an integer magnification
    where possible, with margins in inches for the title and the row/column labels."""
    h_px, w_px = mosaic.shape
    top_in = (0.4 if title else 0.1) + (0.25 if col_labels else 0.0)
    left_in = 1.0 if row_labels else 0.1
    right_in = bottom_in = 0.1
    if figsize is None:
        # Integer magnification bringing a cell near _TARGET_CELL_PX, unless that makes the
        # mosaic too big: then whatever scale fits it in _MAX_MOSAIC_PX.
        scale = max(1.0, float(round(_TARGET_CELL_PX / cell_px)))
        if max(h_px, w_px) * scale > _MAX_MOSAIC_PX:
            scale = max(1.0, math.floor(_MAX_MOSAIC_PX / max(h_px, w_px)))
            if max(h_px, w_px) * scale > _MAX_MOSAIC_PX:
                scale = _MAX_MOSAIC_PX / max(h_px, w_px)
        figsize = (w_px * scale / dpi + left_in + right_in,
                   h_px * scale / dpi + top_in + bottom_in)
    fig = _figure(figsize, dpi)
    fw, fh = figsize
    ax = fig.add_axes((left_in / fw, bottom_in / fh,
                       max(fw - left_in - right_in, 0.1) / fw,
                       max(fh - top_in - bottom_in, 0.1) / fh))
    ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if col_labels:
        ax.xaxis.set_ticks_position("top")
        ax.set_xticks(list(col_centres), [str(s) for s in col_labels], fontsize=9)
        ax.tick_params(axis="x", length=0, pad=2)
    if row_labels:
        ax.set_yticks(list(row_centres), [str(s) for s in row_labels], fontsize=9)
        ax.tick_params(axis="y", length=0, pad=4)
    if title:
        fig.suptitle(title, y=1.0 - 0.05 / fh, va="top", fontsize=11)
    return fig


def _cell_grid(images: np.ndarray, ncol: int) -> np.ndarray:
    """[N, H, W] -> [ceil(N / ncol), ncol, H, W], NaN-filled past N."""
    n, h, w = images.shape
    rows = math.ceil(n / ncol)
    cells = np.full((rows * ncol, h, w), np.nan)
    cells[:n] = images
    return cells.reshape(rows, ncol, h, w)


def plot_image_grid(
    images: object,
    path: str | Path,
    nrow: int = 10,
    title: str | None = None,
    *,
    image_shape: tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """A grid of images, e.g. samples decoded from the prior.

    Args:
        images: ``[N, H*W]``, ``[N, H, W]`` or ``[N, 1, H, W]``; drawn row-major, upright.
        path: output file.
        nrow: images per row of the grid (as torchvision's ``make_grid``); the grid has
            ``ceil(N / nrow)`` rows, the last one padded with grey.
        title: figure title.
        image_shape: ``(H, W)`` for flat rows that are not square.
        value_range: ``(lo, hi)`` shown as black..white; default [0, 1] when the values lie in
            it, else their min..max.
        figsize: inches; default sized so that each image is drawn about 64 px wide.
        dpi: resolution; the image is ``figsize * dpi`` pixels.

    Returns:
        The path written.
    """
    nrow = positive_int(nrow, "nrow")
    imgs = _normalise(_images(images, "images", image_shape), value_range)
    mosaic, _ = _mosaic(_cell_grid(imgs, min(nrow, imgs.shape[0])))
    return _save(_show_mosaic(mosaic, imgs.shape[2] + _PAD_PX, title, dpi, figsize), path)


def plot_reconstructions(
    inputs: object,
    reconstructions: object,
    path: str | Path,
    n: int = 10,
    title: str | None = "Reconstructions",
    *,
    ncol: int = 10,
    image_shape: tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """The first ``n`` inputs above their reconstructions, in pairs of rows.

    Each pair of rows holds up to ``ncol`` examples: the row labelled "input" and, right below,
    the row labelled "reconstr."; pairs are separated by a wider gap.

    Args:
        inputs, reconstructions: images of the same shape (see :func:`plot_image_grid`);
            reconstructions as pixel values (apply a sigmoid to decoder logits first).
        n: number of examples shown (at most N).
        ncol: examples per row.
        title, image_shape, value_range, figsize, dpi: as in :func:`plot_image_grid`. Inputs and
            reconstructions share one value range.

    Returns:
        The path written.
    """
    n = positive_int(n, "n")
    ncol = positive_int(ncol, "ncol")
    a = _images(inputs, "inputs", image_shape)
    b = _images(reconstructions, "reconstructions", image_shape)
    if a.shape != b.shape:
        raise ValueError(
            f"inputs and reconstructions must have the same shape, got {a.shape} and {b.shape}"
        )
    n = min(n, a.shape[0])
    both = _normalise(np.concatenate([a[:n], b[:n]]), value_range)
    ncol = min(ncol, n)
    top, bottom = _cell_grid(both[:n], ncol), _cell_grid(both[n:], ncol)
    pairs = np.stack([top, bottom], axis=1).reshape(-1, ncol, *top.shape[2:])
    gaps = [0 if i % 2 or i == 0 else 3 * _PAD_PX for i in range(pairs.shape[0])]
    mosaic, centres = _mosaic(pairs, gaps)
    labels = ["input" if i % 2 == 0 else "reconstr." for i in range(pairs.shape[0])]
    fig = _show_mosaic(mosaic, a.shape[2] + _PAD_PX, title, dpi, figsize,
                       row_labels=labels, row_centres=centres)
    return _save(fig, path)


def plot_style_grid(
    images: object,
    path: str | Path,
    title: str | None = "Style (rows) by class (columns)",
    *,
    class_names: Sequence[str] | None = None,
    image_shape: tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = DEFAULT_DPI,
) -> Path:
    """The supervised AAE's grid (paper, Fig. 7): one style per row, one class per column.

    ``images[s, c]`` is the decoder's output for style code ``s`` with class ``c``'s one-hot
    label, so a row shows one style written as every class.

    Args:
        images: ``[S, C, H*W]``, ``[S, C, H, W]`` or ``[S, C, 1, H, W]``.
        path: output file.
        title: figure title.
        class_names: column headers (default ``0 .. C-1``).
        image_shape, value_range, figsize, dpi: as in :func:`plot_image_grid`.

    Returns:
        The path written.
    """
    imgs = _normalise(_images(images, "images", image_shape, lead_dims=2), value_range)
    s, c, h, w = imgs.shape
    if class_names is None:
        class_names = [str(k) for k in range(c)]
    elif len(class_names) != c:
        raise ValueError(f"class_names must have {c} entries (one per column), "
                         f"got {len(class_names)}")
    mosaic, _ = _mosaic(imgs)
    col_centres = [_PAD_PX + j * (w + _PAD_PX) + w / 2 for j in range(c)]
    fig = _show_mosaic(mosaic, w + _PAD_PX, title, dpi, figsize, col_labels=class_names,
                       col_centres=col_centres)
    return _save(fig, path)
