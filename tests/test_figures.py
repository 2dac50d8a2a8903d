"""Legible figures without training: one colour scale for compared maps, linked and numbered figures, training curves."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from fer_lib import plots  # noqa: E402
from fer_lib.engine import RunConfig  # noqa: E402
from fer_lib.report import page  # noqa: E402
from fer_lib.report.plan import make_plan  # noqa: E402

PERCEPTUAL = {"viridis", "magma", "inferno", "plasma", "cividis"}


def fake_record(seed: int = 0, synthetic: bool = False) -> SimpleNamespace:
    cfg = RunConfig(dataset="fer2013", model="daf_mhsca", profile="cpu", seed=seed)
    return SimpleNamespace(id=cfg.id, config=cfg, plan={"epochs": 8, "image_size": 72},
                           data={"synthetic": synthetic, "n_train": 100, "n_train_used": 40, "classes": ["a", "b"]},
                           env={"device": "cpu", "cpu": "Test <CPU>", "cpu_count": 2, "torch_threads": 1})


def overlays(fig: Any) -> list[AxesImage]:
    """The map overlays of a figure: every image drawn with a colormap other than grey."""
    return [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name != "gray" and im.get_array().ndim == 2]


def colourbars(fig: Any) -> list[Any]:
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


# ---------------------------------------------------------------- attention maps


def attention_figure(scale: str) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    varied = 0.4 + 0.2 * rng.random((3, 3, 3))  # 0.4 - 0.6
    large = 100.0 + 50.0 * rng.random((3, 2, 2))  # another model's maps, another quantity
    fig = plots.attention_grid(rng.integers(0, 255, (3, 1, 48, 48)), [0, 1, 2],
                               [("m", varied, [0, 1, 2]), ("l", large, [0, 0, 0]), ("none", None, [1, 1, 1])],
                               ["a", "b", "c"], "footer", scale=scale)
    return fig, varied, large


def clim(m: np.ndarray) -> tuple[float, float]:
    return round(float(m.min()), 6), round(float(m.max()), 6)


def test_attention_panels_of_a_model_share_one_scale_a_perceptual_colormap_and_a_colourbar() -> None:
    fig, varied, large = attention_figure("row")
    images = overlays(fig)
    assert len(images) == 6  # two rows with maps, three faces each
    rows = [{tuple(np.round(im.get_clim(), 6)) for im in images[k:k + 3]} for k in (0, 3)]
    assert rows == [{clim(varied)}, {clim(large)}]  # one vmin / vmax over all faces of a model, not per panel
    assert {im.get_cmap().name for im in images} <= PERCEPTUAL
    bars = colourbars(fig)
    assert len(bars) == 2 and {b.cmap.name for b in bars} <= PERCEPTUAL
    assert [tuple(np.round(b.mappable.get_clim(), 6)) for b in bars] == [clim(varied), clim(large)]
    plots.plt.close(fig)


def test_attention_scale_all_is_one_scale_for_every_panel() -> None:
    fig, varied, large = attention_figure("all")
    both = np.concatenate([varied.ravel(), large.ravel()])
    assert {tuple(np.round(im.get_clim(), 6)) for im in overlays(fig)} == {clim(both)}
    (bar,) = colourbars(fig)
    assert tuple(np.round(bar.mappable.get_clim(), 6)) == clim(both)
    plots.plt.close(fig)
    flat = np.full((3, 3, 3), 0.5)
    up = plots.upsample(flat, (48, 48))  # the upsampled maps keep their values: no per-map stretching to [0, 1]
    assert up.shape == (3, 48, 48) and np.allclose(up, 0.5)


def test_shared_range_and_map_note() -> None:
    assert plots.shared_range([np.array([[0.2, 0.3]]), None, np.array([[0.9]])]) == pytest.approx((0.2, 0.9))
    lo, hi = plots.shared_range([np.full((2, 2), 0.5)])
    assert lo < 0.5 < hi and hi - lo < 0.01  # a constant map: a narrow range around it
    assert plots.upsample_note([np.zeros((7, 3, 3)), None], 48) == "maps are 3 x 3, upsampled bilinearly to 48 px"


def test_explorer_heads_share_one_scale_with_colourbars() -> None:
    import torch

    from fer_lib import explore
    from fer_lib.models import build_model

    model = build_model("daf_mhsca", 2, image_size=48).eval()
    view = explore.update(model, torch.randint(0, 255, (1, 48, 48), dtype=torch.uint8), head=1)
    fig = explore.render(view, ["a", "b"])
    images = overlays(fig)
    assert {im.get_cmap().name for im in images} <= PERCEPTUAL and "jet" not in {im.get_cmap().name for im in images}
    lo, hi = plots.shared_range([view.head_maps])
    heads = [im for im in images if np.allclose(im.get_clim(), (lo, hi))]
    assert len(heads) == len(view.head_maps) + 1  # every head below, and the selected one above
    assert len(colourbars(fig)) >= 2  # A_s, and the heads
    assert explore.map_note(view) == "maps are 2 x 2, upsampled bilinearly to 48 px"
    plots.plt.close(fig)


# ---------------------------------------------------------------- confusion matrices and captions


def test_confusion_cells_show_the_row_share_and_the_count() -> None:
    fig = plots.confusion_grid([("m", [[3, 1], [0, 4]], ["angry", "disgust"])], "footer")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.75\n(3)", "0.25\n(1)", "0", "1.00\n(4)"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["angry", "disgust"]
    assert len(colourbars(fig)) == 1
    plots.plt.close(fig)


def test_caption_says_profile_data_split_seeds_epochs_size_and_hardware() -> None:
    caption = plots.figure_caption("Maps <b>", [fake_record(0), fake_record(1)], split="test")
    for part in ("profile cpu", "FER2013, real faces (40 of 100 training faces)", "test split", "seeds 0, 1", "8 epochs",
                 "image size 72 px", "CPU Test &lt;CPU&gt;, 2 cores, 1 torch thread"):
        assert part in caption, part
    assert caption.startswith("Maps &lt;b&gt;")  # text is escaped
    assert "SYNTHETIC" in plots.figure_caption("x", [fake_record(synthetic=True)])


# ---------------------------------------------------------------- Page.show_figure


def test_show_figure_writes_the_png_links_it_with_alt_text_and_numbers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **_: shown.extend(objs))
    report = page.Page(make_plan("smoke"), tmp_path)
    figs = []
    for name in ("first", "second"):
        fig, ax = plots.plt.subplots()
        ax.plot([0, 1])
        figs.append(fig)
        path = report.show_figure(fig, name, f"caption of <i>{name}</i>", 'alt "text" <x>')
        assert path == tmp_path / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(plots.plt.fignum_exists(f.number) for f in figs)  # closed
    first, second = (obj.data for obj in shown)
    assert first == ('<figure><img src="figures/first.png" alt="alt &quot;text&quot; &lt;x&gt;">'
                     "<figcaption>Figure 1. caption of <i>first</i></figcaption></figure>")
    assert "<figcaption>Figure 2. caption of <i>second</i>" in second
    assert not re.search(r"base64|data:image", first + second)  # linked, never embedded


# ---------------------------------------------------------------- training curves


def history(epochs: int, grads: bool = True) -> list[dict[str, Any]]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "loss": 3.0 - 0.2 * e, "loss_wce": 2.0 - 0.1 * e, "loss_dna": 1.0 - 0.05 * e, "loss_mhv": -0.01 * e,
               "loss_gate_mhv": 0.5, "lr": 1e-3 / e, "train_accuracy": 0.2 + 0.05 * e, "val_accuracy": 0.2 + 0.04 * e,
               "test": {"accuracy": 0.3}, "seconds": 10.0}
        if grads:
            row.update(grad_wce=1e-2 * e, grad_dna=1e-3, grad_mhv=0.0)
        rows.append(row)
    return rows


def test_curve_series_sorts_history_keys_into_panels() -> None:
    series = plots.curve_series(history(3))
    loss, acc, lr, grad = (series[p] for p in plots.CURVE_PANELS)
    assert set(loss) == {"loss", "loss_wce", "loss_dna", "loss_mhv"}  # the gate is not a loss part
    assert acc["val_accuracy"] == ([1, 2, 3], pytest.approx([24.0, 28.0, 32.0]))  # in percent
    assert lr["lr"][1] == pytest.approx([1e-3, 5e-4, 1e-3 / 3])
    assert set(grad) == {"grad_wce", "grad_dna", "grad_mhv"}


def test_training_curves_draw_every_panel_from_a_fake_history() -> None:
    rows = [("DAF-MHSCA | FER2013", [(0, history(4)), (1, history(2))]), ("w/o DAF | FER2013", [(0, history(2, grads=False))])]
    fig = plots.training_curves(rows, "footer", title="Table 3")
    panels = np.asarray(fig.axes[:8]).reshape(2, 4)
    loss, acc, lr, grad = panels[0]
    assert len(loss.get_lines()) == 2 * 4 and len(acc.get_lines()) == 2 * 2 and len(lr.get_lines()) == 2
    assert list(loss.get_lines()[0].get_ydata()) == pytest.approx([2.8, 2.6, 2.4, 2.2])  # the total loss of seed 0
    assert len(grad.get_lines()) == 2 * 2 and grad.get_yscale() == "log"  # the zero grad_mhv is not drawn on a log axis
    assert panels[0][0].get_shared_y_axes().joined(panels[0][0], panels[1][0])  # y shared down a column
    assert panels[0][1].get_shared_x_axes().joined(panels[0][1], panels[1][3])  # x shared by all
    assert "not recorded" in [t.get_text() for t in panels[1][3].texts]
    assert any("footer" in t.get_text() for t in fig.texts)
    assert [t.get_text() for t in panels[0][0].get_legend().get_texts()][0] == "loss (total)"
    fig.canvas.draw()
    plots.plt.close(fig)


def test_training_curves_share_the_loss_axis_only_between_the_same_loss_parts() -> None:
    dan = [{"epoch": 1, "loss": 120.0, "loss_ce": 2.0, "loss_attention": 118.0, "lr": 1e-4, "train_accuracy": 0.9}]
    fig = plots.training_curves([("DAF-MHSCA", [(0, history(2))]), ("DDAMFN", [(0, dan)])], "footer")
    panels = np.asarray(fig.axes[:8]).reshape(2, 4)
    assert not panels[0][0].get_shared_y_axes().joined(panels[0][0], panels[1][0])  # different sums: own loss axes
    assert panels[0][1].get_shared_y_axes().joined(panels[0][1], panels[1][1])  # accuracy still shared
    fig.canvas.draw()
    top, bottom = panels[0][0].get_ylim()[1], panels[1][0].get_ylim()[1]
    assert top < 5 and bottom >= 120  # each loss axis takes in its own row
    low, high = panels[0][1].get_ylim()
    assert low <= 24.0 and high >= 90.0  # the shared accuracy axis takes in both rows (24 % and 90 %)
    assert "not recorded" in [t.get_text() for t in panels[1][3].texts]
    plots.plt.close(fig)
