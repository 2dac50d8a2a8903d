"""The head explorer: A_s, A_c, every head's spatial map and the prediction for a chosen face.

:func:`update` is the whole computation, free of any UI (tests call it without a browser);
:func:`render` draws its result as matplotlib panels; :func:`explorer` wraps both in ipywidgets
(pick a run, a test face or an uploaded photo, a head); :func:`static_panels` draws a fixed
selection, so a page rendered without a kernel still shows the explorer's content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fer_lib.engine.inputs import model_input
from fer_lib.explain import display_images, upsample
from fer_lib.models import InputSpec

STATIC_MARKER = "static-explorer"  # id of the HTML block that announces the static panels


@dataclass
class View:
    """What the explorer shows for one (model, face, head); maps at feature resolution h x w (numpy)."""

    image: np.ndarray  # S x S x 3 in [0, 1], the face as the model sees it (before normalisation)
    probs: np.ndarray  # K softmax probabilities
    head: int | None  # the selected head (None when the model has no heads)
    head_maps: np.ndarray | None  # N x h x w, every head's spatial map
    a_s: np.ndarray | None  # h x w, DAF's A_s averaged over channels (Eq. 8)
    a_c: np.ndarray | None  # C, DAF's channel weights A_c = GAP(A_s) (Eq. 12)

    @property
    def pred(self) -> int:
        return int(self.probs.argmax())

    @property
    def head_map(self) -> np.ndarray | None:
        return None if self.head_maps is None or self.head is None else self.head_maps[self.head]

    def upsampled(self, m: np.ndarray) -> np.ndarray:
        """A map at feature resolution laid out on the S x S image (bilinear)."""
        return upsample(torch.as_tensor(m)[None].float(), self.image.shape[0])[0].numpy()


def as_face(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """One face as uint8 1 x C x H x W: accepts C x H x W (a FaceData row), H x W (grey) or H x W x 3 (RGB)."""
    t = torch.as_tensor(np.asarray(image))
    if t.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image, got {t.dtype}")
    if t.ndim == 2:
        t = t[None]
    elif t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] not in (1, 3):
        t = t.permute(2, 0, 1)
    if t.ndim != 3:
        raise ValueError(f"expected an image of 2 or 3 dimensions, got shape {tuple(t.shape)}")
    return t[None].contiguous()


@torch.no_grad()
def update(model: nn.Module, image: torch.Tensor | np.ndarray, head: int = 0, spec: InputSpec | None = None) -> View:
    """The explorer's state for ``image`` (see :func:`as_face`) and head index ``head`` (clipped to the heads there are)."""
    spec = spec or model.input_spec
    face = as_face(image)
    model.eval()
    out = model(model_input(face, spec))
    maps = out.head_maps
    heads = None if maps is None else maps[0].float().numpy()
    a_s = out.extras.get("A_s")
    a_c = out.extras.get("A_c")
    return View(
        image=display_images(face, spec.size)[0],
        probs=out.logits[0].float().softmax(dim=0).numpy(),
        head=None if heads is None else int(min(max(head, 0), len(heads) - 1)),
        head_maps=heads,
        a_s=None if a_s is None else a_s[0].float().mean(dim=0).numpy(),
        a_c=None if a_c is None else a_c[0].float().numpy(),
    )


def map_note(view: View) -> str:
    """"maps are h x w, upsampled bilinearly to S px" for the maps of a :class:`View`."""
    from fer_lib.plots import upsample_note

    return upsample_note([view.a_s, None if view.head_maps is None else view.head_maps[0]], view.image.shape[0])


def render(view: View, classes: Sequence[str], title: str = "", true_label: int | None = None) -> Any:
    """Matplotlib panels of a :class:`View`: face, A_s, the selected head, A_c, probabilities; below, every head.
    Maps use a perceptual colormap; every head map shares one colour scale (A_s has its own), each with a colourbar."""
    import matplotlib.pyplot as plt

    from fer_lib.plots import MAP_CMAP, map_colorbar, shared_range

    n_heads = 0 if view.head_maps is None else len(view.head_maps)
    fig = plt.figure(figsize=(12.5, 5.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
    axes = top.subplots(1, 5)
    grey = view.image.mean(axis=2)
    heads_range = shared_range([view.head_maps])
    a_s_range = shared_range([view.a_s])

    def show(ax: Any, m: np.ndarray | None, name: str, scale: tuple[float, float]) -> None:
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
        if m is None:
            ax.text(0.5, 0.5, "not in this model", ha="center", va="center", transform=ax.transAxes, color="w")
        else:
            ax.imshow(view.upsampled(m), cmap=MAP_CMAP, alpha=0.55, vmin=scale[0], vmax=scale[1])
            name += f"\n{m.shape[0]} x {m.shape[1]}, range {m.min():.3f}-{m.max():.3f}"
        ax.set_title(name, fontsize=8)
        ax.axis("off")

    ax = axes[0]
    ax.imshow(view.image)
    label = f"PL {classes[view.pred]} ({view.probs.max():.2f})"
    colour = "black"
    if true_label is not None:
        label = f"TL {classes[true_label]}\n" + label
        colour = "green" if true_label == view.pred else "red"
    ax.set_title(label, fontsize=8, color=colour)
    ax.axis("off")
    show(axes[1], view.a_s, "A_s (DAF, Eq. 8), channel mean", a_s_range)
    if view.a_s is not None:
        map_colorbar(top, axes[1], *a_s_range, "A_s")
    show(axes[2], view.head_map, f"head {view.head} (Eq. 9 gate, channel mean)" if view.head is not None else "head map", heads_range)
    if view.head_map is not None:
        map_colorbar(top, axes[2], *heads_range, "head maps (one scale)")
    ax = axes[3]
    if view.a_c is None:
        ax.text(0.5, 0.5, "no A_c in this model", ha="center", va="center", transform=ax.transAxes)
        ax.axis("off")
    else:
        ax.plot(np.sort(view.a_c)[::-1])
        ax.set_title(f"A_c (Eq. 12): {len(view.a_c)} channels, sorted", fontsize=8)
        ax.set_xlabel("channel rank", fontsize=7)
        ax.tick_params(labelsize=7)
    ax = axes[4]
    ax.barh(range(len(classes)), view.probs, color=["tab:orange" if k == view.pred else "tab:blue" for k in range(len(classes))])
    ax.set_yticks(range(len(classes)), list(classes), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title("probabilities", fontsize=8)
    ax.tick_params(labelsize=7)
    if n_heads:
        head_axes = np.atleast_1d(bottom.subplots(1, n_heads))
        for i, ax in enumerate(head_axes):
            show(ax, view.head_maps[i], f"head {i}" + (" (selected)" if i == view.head else ""), heads_range)
        map_colorbar(bottom, head_axes.tolist(), *heads_range, "head maps (one scale)")
    else:
        bottom.text(0.5, 0.5, "this model has no attention heads", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def static_panels(model: nn.Module, images: Sequence[Any], classes: Sequence[str], heads: Sequence[int],
                  labels: Sequence[int] | None = None, spec: InputSpec | None = None, caption: str = "") -> list[Any]:
    """The fixed selection drawn as figures (one per (face, head) pair), for pages without a kernel."""
    figs = []
    for k, (image, head) in enumerate(zip(images, heads)):
        view = update(model, image, head, spec)
        figs.append(render(view, classes, caption, None if labels is None else int(labels[k])))
    return figs


def upload_face(content: bytes) -> np.ndarray:
    """An uploaded photo's bytes -> the face crop predict would use (whole image if no face is found)."""
    import cv2

    from fer_lib.predict import crop_faces

    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the upload is not an image OpenCV can read")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    crops = crop_faces(rgb)
    return crops[0].crop if crops else rgb


def explorer(runs: Mapping[str, tuple[nn.Module, InputSpec, Sequence[str]]], faces: Sequence[Any],
             labels: Sequence[int] | None = None, face_names: Sequence[str] | None = None) -> Any:
    """ipywidgets UI: run dropdown, face slider (or an uploaded photo), head slider; the panels redraw on each change.

    ``runs`` maps a label to (model, spec, classes); ``faces`` are uint8 images (see :func:`as_face`).
    The returned box's ``view`` attribute holds the :class:`View` drawn last.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    names = list(runs)
    if not names:
        raise ValueError("the explorer needs at least one run with a model: train one, or build the report without --no-train")
    run_w = W.Dropdown(options=names, description="run", layout=W.Layout(width="60%"))
    face_w = W.IntSlider(0, 0, max(len(faces) - 1, 0), description="test face")
    head_w = W.IntSlider(0, 0, 15, description="head")
    upload_w = W.FileUpload(accept="image/*", multiple=False, description="upload photo")
    use_upload = W.Checkbox(False, description="use uploaded photo")
    out = W.Output()
    uploaded: dict[str, np.ndarray] = {}

    def redraw(*_: Any) -> None:
        model, spec, classes = runs[run_w.value]
        if use_upload.value and "face" in uploaded:
            image, label, name = uploaded["face"], None, "uploaded photo"
        else:
            i = face_w.value
            image = faces[i]
            label = None if labels is None else int(labels[i])
            name = face_names[i] if face_names else f"test face {i}"
        view = update(model, image, head_w.value, spec)
        box.view = view
        head_w.max = max(0, (0 if view.head_maps is None else len(view.head_maps)) - 1)
        with out:
            out.clear_output(wait=True)
            fig = render(view, classes, f"{run_w.value} | {name}", label)
            display(fig)
            plt.close(fig)

    def on_upload(change: Any) -> None:
        value = change["new"]
        if not value:
            return
        item = value[0] if isinstance(value, (list, tuple)) else next(iter(value.values()))
        try:
            uploaded["face"] = upload_face(bytes(item["content"]))
            use_upload.value = True
        except ValueError as err:
            with out:
                print(f"upload not used: {err}")
        redraw()

    for w in (run_w, face_w, head_w, use_upload):
        w.observe(redraw, names="value")
    upload_w.observe(on_upload, names="value")
    box = W.VBox([W.HBox([run_w, head_w]), W.HBox([face_w, upload_w, use_upload]), out])
    redraw()
    return box


def show_widget(widget: Any, fallback_text: str) -> None:
    """Display a widget; pages rendered without a kernel show ``fallback_text`` instead of the widget's repr."""
    from IPython.display import display

    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data = dict(data or {})
    data["text/plain"] = fallback_text
    display(data, raw=True)
