"""Figures: each writes a non-empty PNG of the expected pixel size, with upright images."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from aae_fast.evaluation import (
    pca_2d,
    plot_image_grid,
    plot_latent,
    plot_prior_and_codes,
    plot_reconstructions,
    plot_style_grid,
)
from aae_fast.evaluation import plots


def read(path):
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 200
    return imread(path)


def codes(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    c = torch.randn(n, d, generator=g)
    c[:, 0] += 3 * labels  # so the scatter is not a blob
    return c, labels


@pytest.fixture
def titles(monkeypatch):
    """Records the title of every saved figure's first axes."""
    seen = []
    original = plots._save

    def save(fig, path):
        seen.append(fig.axes[0].get_title())
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return seen


@pytest.mark.parametrize("d", [1, 2, 8])
@pytest.mark.parametrize("with_labels", [True, False])
def test_plot_latent(tmp_path, titles, d, with_labels):
    c, labels = codes(300, d)
    out = plot_latent(c, labels if with_labels else None, tmp_path / "a" / "b" / "latent.png",
                      title="codes", figsize=(5.0, 4.0), dpi=100)
    assert isinstance(out, Path) and out.parent.name == "b"
    img = read(out)
    assert img.shape[:2] == (400, 500)
    assert img[..., :3].std() > 0.05  # something was drawn
    assert titles[-1].startswith("codes")
    assert ("PCA of 8-D codes" in titles[-1]) == (d == 8)


def test_plot_latent_default_size_continuous_labels_and_names(tmp_path):
    c, labels = codes(200, 2)
    img = read(plot_latent(c, c[:, 1], tmp_path / "cont.png"))
    assert img.shape[:2] == (720, 840)  # (6, 7) inches at 120 dpi
    names = [f"class {k}" for k in range(10)]
    read(plot_latent(c.numpy(), labels.numpy(), tmp_path / "names.png", label_names=names))


def test_plot_latent_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"codes must have shape \[N, D\]"):
        plot_latent(torch.randn(10), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"labels must have shape \[10\]"):
        plot_latent(torch.randn(10, 2), torch.zeros(9, dtype=torch.int64), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_label_names_must_cover_the_labels(tmp_path):
    c, labels = codes(50, 2)
    names = [f"class {k}" for k in range(10)]
    for bad in (labels + 1, labels - 1):  # 10 or -1 occur: no name for them
        with pytest.raises(ValueError, match=r"label_names has 10 names, so labels must lie in \[0, 10\)"):
            plot_latent(c, bad, tmp_path / "x.png", label_names=names)
    with pytest.raises(ValueError, match="label_names has 10 names"):
        plot_latent(c[:, :1], labels + 1, tmp_path / "x.png", label_names=names)  # histogram
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("n", [0, 1])
def test_a_projection_needs_two_codes(tmp_path, n):
    with pytest.raises(ValueError, match=r"codes must have N >= 2 rows and D >= 2 columns"):
        pca_2d(torch.randn(n, 5))
    with pytest.raises(ValueError, match=r"N >= 2 rows"):
        plot_latent(torch.randn(n, 5), None, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_latent_panels(tmp_path):
    """Figure 2's layout: panels in rows of ncols, one figure legend, PCA named in a >2-D panel's
    title; the last row's unused axes hidden."""
    (a, la), (b, lb), (c8, lc) = codes(300, 2), codes(200, 2, seed=1), codes(100, 8, seed=2)
    path = plots.plot_latent_panels([("AAE", a, la), ("VAE", b, lb), ("8-D", c8, lc)],
                                    tmp_path / "fig2.png", title="Figure 2", panel_size=3.0, dpi=100)
    img = read(path)
    assert img.shape[1] > img.shape[0]  # two columns of 3-inch panels, plus the legend
    assert img[..., :3].std() > 0.05
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_latent_panels([], tmp_path / "none.png")
    with pytest.raises(ValueError, match=r"codes of panel '1-D' must have >= 2 columns, got 1"):
        plots.plot_latent_panels([("1-D", torch.randn(5, 1), None)], tmp_path / "bad.png")


def test_pca_2d_finds_the_principal_axes():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 5, generator=g, dtype=torch.float64) * torch.tensor(
        [0.1, 5.0, 0.2, 2.0, 0.1], dtype=torch.float64
    ) + 7.0
    xy, mean, comps, explained = pca_2d(z)
    assert xy.shape == (2000, 2) and comps.shape == (2, 5)
    assert np.argmax(np.abs(comps[0])) == 1 and np.argmax(np.abs(comps[1])) == 3
    assert (comps[[0, 1], [1, 3]] > 0).all()  # sign fixed: largest loading positive
    np.testing.assert_allclose(mean, z.mean(0).numpy())
    np.testing.assert_allclose(xy, (z.numpy() - mean) @ comps.T)
    assert 0.98 < explained < 1.0


@pytest.mark.parametrize("d", [2, 8])
def test_plot_prior_and_codes(tmp_path, titles, d):
    c, labels = codes(300, d)
    prior = torch.randn(1000, d)
    img = read(plot_prior_and_codes(prior, c, labels, tmp_path / "overlay.png", dpi=100))
    assert img.shape[:2] == (600, 700)
    assert ("PCA" in titles[-1]) == (d > 2)
    read(plot_prior_and_codes(prior, c, None, tmp_path / "overlay_nolabels.png"))
    with pytest.raises(ValueError, match="same dimension D"):
        plot_prior_and_codes(torch.randn(5, d + 1), c, labels, tmp_path / "bad.png")


def digits(n=12):
    """Fake 28x28 images with a bright block in the top-right corner, as flat rows."""
    imgs = torch.zeros(n, 28, 28)
    imgs[:, 1:8, 20:27] = 1.0
    imgs[:, 14, 4:24] = torch.linspace(0.2, 0.8, n)[:, None]
    return imgs


@pytest.mark.parametrize("layout", ["flat", "hw", "chw"])
def test_plot_image_grid_layouts_agree(tmp_path, layout):
    imgs = digits()
    x = {"flat": imgs.reshape(12, 784), "hw": imgs, "chw": imgs[:, None]}[layout]
    img = read(plot_image_grid(x, tmp_path / f"{layout}.png", nrow=5, title="samples",
                               figsize=(4.0, 3.0), dpi=100))
    assert img.shape[:2] == (300, 400)
    ref_path = tmp_path / "ref.png"
    if not ref_path.exists():
        plot_image_grid(imgs.reshape(12, 784), ref_path, nrow=5, title="samples",
                        figsize=(4.0, 3.0), dpi=100)
    np.testing.assert_array_equal(img, imread(ref_path))


def test_image_orientation_is_upright(tmp_path):
    # One image, no title: the bright block must land in the top-right of the picture (a
    # transposed image would put it bottom-left, a flipped one bottom-right).
    img = read(plot_image_grid(digits(1).reshape(1, 784), tmp_path / "one.png", nrow=1))
    grey = img[..., :3].mean(-1)
    # Crop to the drawn mosaic (everything that is not the white figure background).
    rows, cols = np.nonzero(grey < 0.99)
    grey = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    ys, xs = np.nonzero(grey > 0.9)
    h, w = grey.shape
    assert len(ys) > 0 and ys.mean() < 0.4 * h and xs.mean() > 0.6 * w


def test_mosaic_places_pixels_row_major():
    img = np.zeros((1, 2, 28, 28))
    img[0, 1, 3, 5] = 1.0  # second image, row 3, column 5
    mosaic, centres = plots._mosaic(img)
    pad = plots._PAD_PX
    assert mosaic[pad + 3, pad + 28 + pad + 5] == 1.0
    assert mosaic.shape == (28 + 2 * pad, 2 * 28 + 3 * pad)
    assert centres == [pad + 14]


def test_plot_image_grid_auto_size_and_value_range(tmp_path):
    # 23 images, 8 per row: 3 rows; cells of 30 px drawn at 2x.
    img = read(plot_image_grid(digits(23).reshape(23, 784) * 4 - 2, tmp_path / "g.png", nrow=8))
    pad = plots._PAD_PX
    assert img.shape[1] == round((8 * (28 + pad) + pad) * 2 + 0.2 * 120)
    read(plot_image_grid(torch.rand(6, 12), tmp_path / "rect.png", nrow=3, image_shape=(3, 4)))
    with pytest.raises(ValueError, match="not a square number: pass image_shape"):
        plot_image_grid(torch.rand(6, 12), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="nrow must be a positive int"):
        plot_image_grid(torch.rand(6, 16), tmp_path / "bad.png", nrow=0)


def test_plot_reconstructions(tmp_path):
    x = digits(16).reshape(16, 784)
    recon = (x + 0.1 * torch.rand(16, 784)).clamp(0, 1)
    img = read(plot_reconstructions(x, recon, tmp_path / "recon.png", n=13, ncol=5,
                                    figsize=(6.0, 5.0), dpi=100))
    assert img.shape[:2] == (500, 600)
    read(plot_reconstructions(x, recon, tmp_path / "recon_default.png"))
    with pytest.raises(ValueError, match="inputs and reconstructions must have the same shape"):
        plot_reconstructions(x, recon[:15], tmp_path / "bad.png")


def test_plot_style_grid(tmp_path):
    styles = torch.rand(4, 10, 784)
    img = read(plot_style_grid(styles, tmp_path / "style.png", figsize=(6.0, 3.0), dpi=100))
    assert img.shape[:2] == (300, 600)
    read(plot_style_grid(styles.reshape(4, 10, 1, 28, 28), tmp_path / "style2.png",
                         class_names=list("ABCDEFGHIJ")))
    with pytest.raises(ValueError, match="class_names must have 10 entries"):
        plot_style_grid(styles, tmp_path / "bad.png", class_names=["a"])
    with pytest.raises(ValueError, match=r"images must have shape \[S, C, H\*W\]"):
        plot_style_grid(torch.rand(10, 784), tmp_path / "bad.png")


def test_plots_leave_no_pyplot_figures(tmp_path):
    # The figures are standalone (Agg canvas): pyplot is neither imported nor given figures.
    had_pyplot = "matplotlib.pyplot" in sys.modules
    before = sys.modules["matplotlib.pyplot"].get_fignums() if had_pyplot else None
    plot_latent(torch.randn(20, 2), None, tmp_path / "a.png")
    plot_image_grid(torch.rand(4, 784), tmp_path / "b.png")
    if had_pyplot:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == before
    else:
        assert "matplotlib.pyplot" not in sys.modules
