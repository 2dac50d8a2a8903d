"""Figures of the report (seaborn / matplotlib), each stamped with what produced it.

Every figure carries a footer from :func:`describe_runs`: profile, data (and whether it is the
built-in synthetic data), seeds, epochs, image size and hardware, so a figure read on its own
still says how far it is from the paper's setting.
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from fer_lib.paper import dataset_label

RIGHT, WRONG = "#1a9641", "#d7191c"  # green when the prediction is right, red when wrong (Fig. 7)


def _unique(values: Sequence[Any]) -> str:
    seen: list[str] = []
    for v in values:
        if str(v) not in seen:
            seen.append(str(v))
    return ", ".join(seen)


def describe_runs(runs: Sequence[Any], extra: str = "") -> str:
    """One footer line for figures drawn from run records: profile, data, seeds, epochs, size, hardware."""
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
    hardware = []
    for r in runs:
        env = r.env or {}
        dev = env.get("device", "?")
        hw = env.get("cpu", "?") if dev == "cpu" else dev
        threads = f", {env['torch_threads']} threads" if dev == "cpu" and env.get("torch_threads") else ""
        world = f" x{env['world_size']}" if (env.get("world_size") or 1) > 1 else ""
        hardware.append(f"{hw}{world}{threads}")
    parts = [
        f"profile {_unique([r.config.profile for r in runs])}",
        f"recipe {_unique([r.config.recipe for r in runs])}",
        f"data: {_unique(data)}",
        f"seeds {_unique(sorted({r.config.seed for r in runs}))}",
        f"{_unique([r.plan.get('epochs') for r in runs])} epochs",
        f"{_unique([r.plan.get('image_size') for r in runs])} px",
        f"hardware: {_unique(hardware)}",
    ]
    text = " | ".join(parts)
    return f"{text} | {extra}" if extra else text


def stamp(fig: plt.Figure, text: str, width: int = 150) -> plt.Figure:
    """Write ``text`` (wrapped) under the figure; saved and inline figures use a tight bounding box, which takes it in."""
    lines = textwrap.wrap(text, width=width) or [""]
    fig.text(0.01, -0.01, "\n".join(lines), fontsize=7, va="top", ha="left", color="#444444", family="monospace")
    return fig


def confusion_grid(panels: Sequence[tuple[str, Sequence[Sequence[int]], Sequence[str]]], footer: str, normalise: bool = True) -> plt.Figure:
    """Fig. 5: one confusion matrix per (title, counts rows=true cols=predicted, class names)."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.6), squeeze=False)
    for ax, (title, counts, classes) in zip(axes[0], panels):
        cm = np.asarray(counts, dtype=float)
        if normalise:
            cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        sns.heatmap(cm, annot=True, fmt=".2f" if normalise else ".0f", cmap="Blues", vmin=0, vmax=1 if normalise else None,
                    xticklabels=classes, yticklabels=classes, cbar=False, ax=ax, annot_kws={"fontsize": 7}, square=True)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return stamp(fig, footer)


def tsne_embed(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of feature vectors (scikit-learn); perplexity capped below the sample count."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    perplexity = min(perplexity, max(2.0, (len(features) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def tsne_grid(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], classes: Sequence[str], footer: str) -> plt.Figure:
    """Fig. 6: one scatter per (title, N x 2 embedding, N labels), one colour per class."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.6), squeeze=False)
    palette = sns.color_palette("tab10", len(classes))
    for ax, (title, emb, labels) in zip(axes[0], panels):
        names = np.asarray(classes)[np.asarray(labels)]
        sns.scatterplot(x=emb[:, 0], y=emb[:, 1], hue=names, hue_order=list(classes), palette=palette, s=12, linewidth=0, ax=ax, legend=ax is axes[0][-1])
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title=None)
    fig.tight_layout()
    return stamp(fig, footer)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:  # C x H x W
        image = image.transpose(1, 2, 0)
        if image.shape[2] == 1:
            image = image[:, :, 0]
    image = image / 255.0 if image.max() > 1 else image
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of N x h x w maps to N x H x W, each scaled to [0, 1]."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(maps, dtype=np.float32)).unsqueeze(1)
    t = F.interpolate(t, size=size, mode="bilinear", align_corners=False).squeeze(1)
    lo = t.flatten(1).min(1).values.view(-1, 1, 1)
    hi = t.flatten(1).max(1).values.view(-1, 1, 1)
    return ((t - lo) / (hi - lo).clamp_min(1e-8)).numpy()


def attention_grid(
    images: np.ndarray,
    labels: Sequence[int],
    rows: Sequence[tuple[str, np.ndarray | None, Sequence[int]]],
    classes: Sequence[str],
    footer: str,
) -> plt.Figure:
    """Fig. 7: faces (top row), then per model (title, N x h x w map or None, predictions) an overlay
    with TL (true) / PL (predicted) labels, green when right and red when wrong."""
    n = len(images)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.7 * n, 1.95 * (len(rows) + 1)), squeeze=False)
    rgb = [_to_rgb(im) for im in images]
    for j in range(n):
        axes[0][j].imshow(rgb[j])
        axes[0][j].set_title(f"TL: {classes[labels[j]]}", fontsize=7)
    axes[0][0].set_ylabel("face", fontsize=8)
    for i, (title, maps, preds) in enumerate(rows, start=1):
        heat = upsample(maps, rgb[0].shape[:2]) if maps is not None else None
        for j in range(n):
            ax = axes[i][j]
            ax.imshow(rgb[j])
            if heat is not None:
                ax.imshow(heat[j], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ok = int(preds[j]) == int(labels[j])
            ax.set_title(f"PL: {classes[int(preds[j])]}", fontsize=7, color=RIGHT if ok else WRONG)
            for spine in ax.spines.values():
                spine.set_edgecolor(RIGHT if ok else WRONG)
                spine.set_linewidth(2)
        axes[i][0].set_ylabel(title if maps is not None else f"{title}\n(no maps)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return stamp(fig, footer, width=max(60, 22 * n))


def sweep_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    published: Mapping[str, Mapping[float, float]],
    xlabel: str,
    title: str,
    footer: str,
    logx: bool = False,
) -> plt.Figure:
    """Figs. 8 / Table 5: accuracy against a swept value. ``series`` label -> (x, mean %, std %) of
    our runs (solid, error bars over seeds); ``published`` label -> {x: %} (dashed, hollow markers)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    labels = list(dict.fromkeys([*series, *published]))  # a dataset keeps one colour for ours and the paper's
    palette = sns.color_palette("deep", max(len(labels), 1))
    colours = {label: palette[k % len(palette)] for k, label in enumerate(labels)}
    for label, (x, mean, std) in series.items():
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, color=colours[label], label=f"ours: {label}")
    for label, points in published.items():
        xs = sorted(points)
        colour = colours[label]
        ax.plot(xs, [points[x] for x in xs], linestyle="--", marker="s", mfc="none", color=colour, label=f"paper: {label}")
    if logx:
        ax.set_xscale("log", base=2)
        allx = sorted({float(v) for _, (x, _, _) in series.items() for v in x} | {float(v) for p in published.values() for v in p})
        ax.set_xticks(allx)
        ax.set_xticklabels([f"{v:g}" for v in allx])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return stamp(fig, footer, width=110)


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


def compare_bars(groups: Mapping[str, Mapping[str, tuple[float | None, float, float | None]]], footer: str, title: str = "") -> plt.Figure:
    """Tables 3 and 4 as bars: group (dataset) -> variant -> (our mean %, std %, published % or None).
    Our value is the bar (error bar over seeds); the published value a black tick beside it."""
    variants = list(dict.fromkeys(v for g in groups.values() for v in g))
    n_groups = max(len(groups), 1)
    fig, axes = plt.subplots(1, n_groups, figsize=(max(4.2, 1.0 + 0.75 * len(variants)) * n_groups, 4.0), squeeze=False)
    palette = sns.color_palette("deep", max(len(variants), 1))
    for ax, (group, values) in zip(axes[0], groups.items()):
        for k, variant in enumerate(variants):
            mean, std, pub = values.get(variant, (None, 0.0, None))
            if mean is not None:
                ax.bar(k, mean, yerr=std or None, color=palette[k], capsize=3)
                ax.text(k, mean, f"{mean:.1f}", ha="center", va="bottom", fontsize=7)
            else:
                ax.text(k, 2, "not run", rotation=90, ha="center", va="bottom", fontsize=7, color="#888888")
            if pub is not None:
                ax.plot([k - 0.4, k + 0.4], [pub, pub], color="black", linewidth=2, label="paper" if k == 0 else None)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=30, ha="right", fontsize=8)
        ax.set_title(group, fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], color="black", linewidth=2, label="paper (published)"),
               plt.Rectangle((0, 0), 1, 1, color=palette[0], label="ours (bar; error bar = std over seeds)")]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return stamp(fig, footer, width=max(90, int(60 * n_groups)))
