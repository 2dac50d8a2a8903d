"""Figures of the report (seaborn / matplotlib), each stamped with what produced it.

Every figure carries a footer from :func:`describe_runs`: profile, data (and whether it is the
built-in synthetic data), seeds, epochs, image size and hardware, so a figure read on its own
still says how far it is from the paper's setting.
"""

from __future__ import annotations

import html
import textwrap
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from fer_lib.engine.records import run_hardware
from fer_lib.paper import dataset_label

RIGHT, WRONG = "#1a9641", "#d7191c"  # green when the prediction is right, red when wrong (Fig. 7)


def _unique(values: Sequence[Any]) -> str:
    seen: list[str] = []
    for v in values:
        if str(v) not in seen:
            seen.append(str(v))
    return ", ".join(seen)


def describe_runs(runs: Sequence[Any], extra: str = "") -> str:
    """One footer line for figures drawn from run records: profile, data, seeds, epochs, size, hardware, precision."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return extra or "no runs"
    data = []
    for r in runs:
        name = dataset_label(r.config.dataset)
        if r.data.get("synthetic"):
            name = f"SYNTHETIC stand-in for {name}" if r.config.dataset != "synthetic" else "built-in SYNTHETIC faces"
        elif r.data.get("n_train_used") and r.data.get("n_train") and r.data["n_train_used"] < r.data["n_train"]:
            name = f"{name} ({r.data['n_train_used']} of {r.data['n_train']} training faces)"
        data.append(name)
    hardware = [run_hardware(r.env) for r in runs]
    precision = [(r.env or {}).get("precision") for r in runs]
    parts = [
        f"profile {_unique([r.config.profile for r in runs])}",
        f"recipe {_unique([r.config.recipe for r in runs])}",
        f"data: {_unique(data)}",
        f"seeds {_unique(sorted({r.config.seed for r in runs}))}",
        f"{_unique([r.plan.get('epochs') for r in runs])} epochs",
        f"{_unique([r.plan.get('image_size') for r in runs])} px",
        f"hardware: {_unique(hardware)}",
        *([f"precision {_unique([p or '?' for p in precision])}"] if any(precision) else []),
    ]
    text = " | ".join(parts)
    return f"{text} | {extra}" if extra else text


def stamp(fig: plt.Figure, text: str, width: int = 150) -> plt.Figure:
    """Write ``text`` (wrapped) under the figure; saved and inline figures use a tight bounding box, which takes it in."""
    lines = textwrap.wrap(text, width=width) or [""]
    fig.text(0.01, -0.01, "\n".join(lines), fontsize=7, va="top", ha="left", color="#444444", family="monospace")
    return fig


# ---------------------------------------------------------------- captions (HTML, for Page.show_figure)


def _data_name(r: Any) -> str:
    """Dataset of a run, and whether its faces are real or the synthetic stand-in."""
    name = dataset_label(r.config.dataset)
    if r.data.get("synthetic"):
        return "built-in SYNTHETIC faces" if r.config.dataset == "synthetic" else f"SYNTHETIC stand-in for {name}"
    used, total = r.data.get("n_train_used"), r.data.get("n_train")
    return f"{name}, real faces" + (f" ({used} of {total} training faces)" if used and total and used < total else "")


def caption_facts(runs: Sequence[Any], split: str = "test") -> str:
    """Plain text: profile, data (dataset, split, synthetic or real), seeds, epochs, image size and hardware of ``runs``."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return "No run records drawn."
    parts = [
        f"profile {_unique([r.config.profile for r in runs])} (recipe {_unique([r.config.recipe for r in runs])})",
        f"data: {_unique([_data_name(r) for r in runs])}; {split} split",
        f"seed{'s' if len({r.config.seed for r in runs}) > 1 else ''} {_unique(sorted({r.config.seed for r in runs}))}",
        f"{_unique([r.plan.get('epochs') for r in runs])} epochs",
        f"image size {_unique([r.plan.get('image_size') for r in runs])} px",
        f"hardware: {_unique([run_hardware(r.env) for r in runs])}",
    ]
    return "Runs drawn: " + "; ".join(parts) + "."


def figure_caption(what: str, runs: Sequence[Any], split: str = "test") -> str:
    """An HTML caption (text escaped): what the figure shows, then :func:`caption_facts` of its runs."""
    return f"{html.escape(what)} {html.escape(caption_facts(runs, split))}"


# ---------------------------------------------------------------- Figures 5 and 6


def confusion_grid(panels: Sequence[tuple[str, Sequence[Sequence[int]], Sequence[str]]], footer: str, normalise: bool = True) -> plt.Figure:
    """Fig. 5: one confusion matrix per (title, counts rows=true cols=predicted, class names); with ``normalise``
    the colour and first number are the row share (recall on the diagonal), the count below it (an empty cell
    just "0"); one colour scale."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n + 0.8, 5.0), squeeze=False, layout="constrained")
    mesh = None
    for ax, (title, counts, classes) in zip(axes[0], panels):
        raw = np.asarray(counts, dtype=float)
        share = raw / np.maximum(raw.sum(axis=1, keepdims=True), 1)
        shown = share if normalise else raw
        text = [[f"{s:.2f}\n({int(c)})" if normalise and c else f"{int(c)}" for s, c in zip(srow, crow)] for srow, crow in zip(share, raw)]
        sns.heatmap(shown, annot=np.asarray(text), fmt="", cmap="Blues", vmin=0, vmax=1 if normalise else raw.max() or 1,
                    xticklabels=classes, yticklabels=classes, cbar=False, ax=ax, annot_kws={"fontsize": 7.5},
                    square=True, linewidths=0.5, linecolor="white")
        mesh = ax.collections[0]
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("predicted class", fontsize=9)
        ax.set_ylabel("true class", fontsize=9)
        ax.tick_params(axis="x", labelsize=9, labelrotation=40)
        ax.tick_params(axis="y", labelsize=9, labelrotation=0)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes[0].tolist(), shrink=0.8, label="share of the true class (row)" if normalise else "faces")
    return stamp(fig, footer, width=max(90, 45 * n))


def tsne_embed(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of feature vectors (scikit-learn); perplexity capped below the sample count."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    perplexity = min(perplexity, max(2.0, (len(features) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def tsne_grid(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], classes: Sequence[str], footer: str) -> plt.Figure:
    """Fig. 6: one scatter per (title, N x 2 embedding, N labels), one colour per class, one legend for all."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n + 1.6, 4.8), squeeze=False, layout="constrained")
    palette = dict(zip(classes, sns.color_palette("tab10", len(classes))))
    for ax, (title, emb, labels) in zip(axes[0], panels):
        names = np.asarray(classes)[np.asarray(labels)]
        sns.scatterplot(x=emb[:, 0], y=emb[:, 1], hue=names, hue_order=list(classes), palette=palette, s=14, alpha=0.8,
                        linewidth=0, ax=ax, legend=False)
        ax.set_title(title, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE 1", fontsize=9)
        ax.set_ylabel("t-SNE 2", fontsize=9)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=palette[c], markersize=7, label=c) for c in classes]
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, title="true class", title_fontsize=9)
    return stamp(fig, footer, width=max(90, 45 * n))


# ---------------------------------------------------------------- Figure 7: attention maps

MAP_CMAP = "viridis"  # perceptual and monotonic in lightness; never jet


def _to_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:  # C x H x W
        image = image.transpose(1, 2, 0)
        if image.shape[2] == 1:
            image = image[:, :, 0]
    image = image / 255.0 if image.max() > 1 else image
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of N x h x w maps to N x H x W; values kept (no per-map rescaling)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(maps, dtype=np.float32)).unsqueeze(1)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False).squeeze(1).numpy()


def shared_range(maps: Sequence[np.ndarray | None]) -> tuple[float, float]:
    """One (vmin, vmax) over every map that is compared; a constant map gets a small range around its value."""
    values = [np.asarray(m, dtype=np.float64) for m in maps if m is not None and np.size(m)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    if hi - lo < 1e-6:
        pad = max(abs(hi), 1.0) * 1e-3
        lo, hi = lo - pad, hi + pad
    return lo, hi


def upsample_note(maps: Sequence[np.ndarray | None], pixels: int) -> str:
    """"maps are 3 x 3, upsampled bilinearly to 48 px" for maps whose last two axes are h x w."""
    sizes = list(dict.fromkeys(f"{np.shape(m)[-2]} x {np.shape(m)[-1]}" for m in maps if m is not None))
    return f"maps are {' / '.join(sizes)}, upsampled bilinearly to {pixels} px" if sizes else "no attention maps"


def map_colorbar(fig: plt.Figure, axes: Any, vmin: float, vmax: float, label: str, cmap: str = MAP_CMAP) -> Any:
    """A colourbar for the map overlays drawn with (``cmap``, ``vmin``, ``vmax``) on ``axes``."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), ax=axes, shrink=0.85)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def attention_grid(
    images: np.ndarray,
    labels: Sequence[int],
    rows: Sequence[tuple[str, np.ndarray | None, Sequence[int]]],
    classes: Sequence[str],
    footer: str,
    scale: str = "row",
    cmap: str = MAP_CMAP,
    alpha: float = 0.55,
) -> plt.Figure:
    """Fig. 7: faces (top row), then per model (title, N x h x w map or None, predictions) an overlay
    with TL (true) / PL (predicted) labels, green when right and red when wrong. ``scale="row"``: one
    colour scale (vmin / vmax) over all faces of a model, one colourbar per row (the models' maps are
    different quantities); ``"all"``: one scale and one colourbar for every row. Never per panel."""
    if scale not in ("row", "all"):
        raise ValueError(f"scale must be 'row' or 'all', not {scale!r}")
    n = len(images)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.8 * n + 1.6, 2.0 * (len(rows) + 1)), squeeze=False, layout="constrained")
    rgb = [_to_rgb(im) for im in images]
    common = shared_range([m for _, m, _ in rows])
    for j in range(n):
        axes[0][j].imshow(rgb[j])
        axes[0][j].set_title(f"TL: {classes[labels[j]]}", fontsize=8)
    axes[0][0].set_ylabel("face", fontsize=9)
    for i, (title, maps, preds) in enumerate(rows, start=1):
        heat = upsample(maps, rgb[0].shape[:2]) if maps is not None else None
        vmin, vmax = common if scale == "all" else shared_range([maps])
        for j in range(n):
            ax = axes[i][j]
            ax.imshow(rgb[j].mean(axis=2), cmap="gray", vmin=0, vmax=1)
            if heat is not None:
                ax.imshow(heat[j], cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax)
            ok = int(preds[j]) == int(labels[j])
            ax.set_title(f"PL: {classes[int(preds[j])]}", fontsize=8, color=RIGHT if ok else WRONG)
            for spine in ax.spines.values():
                spine.set_edgecolor(RIGHT if ok else WRONG)
                spine.set_linewidth(2)
        axes[i][0].set_ylabel(title if maps is not None else f"{title}\n(no maps)", fontsize=9)
        if heat is not None and scale == "row":
            map_colorbar(fig, axes[i, :].tolist(), vmin, vmax, f"{title} map", cmap)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if scale == "all" and any(m is not None for _, m, _ in rows):
        map_colorbar(fig, axes[1:, :].ravel().tolist(), *common, "map value (one scale for all rows)", cmap)
    return stamp(fig, footer, width=max(60, 22 * n))


# ---------------------------------------------------------------- training curves

GRAD_LABEL = "gradient norm into x_F'"
CURVE_PANELS = ("loss and its parts", "accuracy (%)", "learning rate", GRAD_LABEL)
SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def curve_series(history: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Per panel of :data:`CURVE_PANELS`, key -> (epochs, values) of a record's history.jsonl rows:
    ``loss`` and ``loss_*`` (gates excluded), ``train_accuracy`` / ``val_accuracy``, ``lr``, ``grad_*``."""
    def panel(key: str) -> str | None:
        if key == "loss" or (key.startswith("loss_") and not key.startswith("loss_gate_")):
            return CURVE_PANELS[0]
        if key in ("train_accuracy", "val_accuracy"):
            return CURVE_PANELS[1]
        if key == "lr":
            return CURVE_PANELS[2]
        return CURVE_PANELS[3] if key.startswith("grad_") else None

    out: dict[str, dict[str, tuple[list[int], list[float]]]] = {p: {} for p in CURVE_PANELS}
    for k, row in enumerate(history, start=1):
        for key, value in row.items():
            name = panel(key)
            if name is None or not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                continue
            epochs, values = out[name].setdefault(key, ([], []))
            epochs.append(int(row.get("epoch", k)))
            values.append(float(value) * (100.0 if name == CURVE_PANELS[1] else 1.0))
    return out


def _curve_colours(rows: Sequence[tuple[str, Sequence[tuple[int, Sequence[Mapping[str, Any]]]]]]) -> dict[str, dict[str, Any]]:
    """Per panel, one colour per series key over the whole figure (the total loss in black)."""
    out: dict[str, dict[str, Any]] = {}
    for panel in CURVE_PANELS:
        keys = list(dict.fromkeys(k for _, runs in rows for _, h in runs for k in curve_series(h)[panel]))
        palette = sns.color_palette("deep", max(len(keys), 1))
        out[panel] = {k: "black" if k == "loss" else palette[i % len(palette)] for i, k in enumerate(keys)}
    return out


def _curve_label(key: str) -> str:
    return {"loss": "loss (total)", "train_accuracy": "train accuracy", "val_accuracy": "validation accuracy",
            "lr": "learning rate"}.get(key, key)


def _share_columns(axes: np.ndarray, rows: Sequence[tuple[str, Sequence[tuple[int, Sequence[Mapping[str, Any]]]]]]) -> None:
    """Share y down each column; the loss column only where every row has the same loss parts (one method's terms)."""
    parts = {frozenset(k for _, h in runs for k in curve_series(h)[CURVE_PANELS[0]]) for _, runs in rows}
    for j in range(axes.shape[1]):
        if j == 0 and len(parts) > 1:
            continue
        for ax in axes[1:, j]:
            ax.sharey(axes[0][j])


def training_curves(rows: Sequence[tuple[str, Sequence[tuple[int, Sequence[Mapping[str, Any]]]]]], footer: str,
                    title: str = "") -> plt.Figure:
    """Per-epoch curves as small multiples: one row per (title, [(seed, history rows), ...]), four columns
    (:data:`CURVE_PANELS`: loss parts, train / validation accuracy %, learning rate, loss-term gradient
    norms on a log axis); x shared by all, y down each column (the loss column only where every row has the
    same loss parts: the methods' losses are different sums); one marker per seed."""
    n = max(len(rows), 1)
    height = 2.3 * n + 1.0
    grid = {"left": 0.07, "right": 0.99, "top": 1 - 0.75 / height, "bottom": 0.45 / height, "wspace": 0.25, "hspace": 0.12}
    # a fixed grid, not constrained layout: that costs a minute per figure of many rows on a busy CPU
    fig, axes = plt.subplots(n, 4, figsize=(15.0, height), squeeze=False, sharex=True, gridspec_kw=grid)
    _share_columns(axes, rows)  # before drawing, so that the shared limits take in every row
    colours = _curve_colours(rows)
    seeds = list(dict.fromkeys(s for _, runs in rows for s, _ in runs))
    positive_grads = False
    for i, (name, runs) in enumerate(rows):
        drawn = [False] * len(CURVE_PANELS)
        for seed, history in runs:
            marker = SEED_MARKERS[seeds.index(seed) % len(SEED_MARKERS)]
            for j, panel in enumerate(CURVE_PANELS):
                for key, (x, y) in curve_series(history)[panel].items():
                    if panel == GRAD_LABEL:
                        keep = [(a, b) for a, b in zip(x, y) if b > 0]
                        x, y = [a for a, _ in keep], [b for _, b in keep]
                        positive_grads = positive_grads or bool(y)
                    if not y:
                        continue
                    drawn[j] = True
                    axes[i][j].plot(x, y, marker=marker, markersize=4, linewidth=1.3, color=colours[panel][key],
                                    linestyle="--" if key == "val_accuracy" else "-", alpha=0.85)
        for j in (j for j, d in enumerate(drawn) if not d):
            axes[i][j].text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axes[i][j].transAxes, color="#888888")
        axes[i][0].set_ylabel(textwrap.fill(name, 28), fontsize=8)
    for j, panel in enumerate(CURVE_PANELS):
        axes[0][j].set_title(panel, fontsize=10)
        axes[-1][j].set_xlabel("epoch", fontsize=9)
        if panel == GRAD_LABEL and positive_grads:
            axes[0][j].set_yscale("log")
        if panel == CURVE_PANELS[2]:
            for ax in axes[:, j]:
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    for j, panel in enumerate(CURVE_PANELS):
        lines = [plt.Line2D([], [], color=c, linestyle="--" if k == "val_accuracy" else "-", label=_curve_label(k))
                 for k, c in colours[panel].items()]
        if lines:
            axes[0][j].legend(handles=lines, fontsize=7, loc="best")
    handles = [plt.Line2D([], [], color="#555555", marker=SEED_MARKERS[k % len(SEED_MARKERS)], linestyle="", label=f"seed {s}")
               for k, s in enumerate(seeds)]
    fig.legend(handles=handles, loc="upper right", ncols=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11, x=0.07, ha="left")
    return stamp(fig, footer, width=150)


def efficiency_scatter(panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], footer: str, ylabel: str = "training time (ms/iter)") -> plt.Figure:
    """Fig. 9: per panel (x label, points), one point per dict(name, x, y, source); ``source`` "paper"
    is drawn as a hollow red diamond, a measurement as a filled dot."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.4), squeeze=False)
    for ax, (xlabel, points) in zip(axes[0], panels):
        for p in points:
            measured = p.get("source") != "paper"
            if measured:
                ax.scatter(p["x"], p["y"], s=60, marker="o", color="#2b83ba", edgecolors="#333333")
            else:
                ax.scatter(p["x"], p["y"], s=80, marker="D", facecolors="none", edgecolors="#d7191c", linewidths=2)
            ax.annotate(f"{p['name']}{'' if measured else ' (paper)'}", (p["x"], p["y"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.margins(0.25)
    fig.tight_layout()
    return stamp(fig, footer, width=100 * len(panels))
