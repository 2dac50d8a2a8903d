"""Attributions beside the model's own attention: do they look at the same pixels, and at the expression?

- :func:`attention_maps`: each model's spatial maps from one forward pass (mean over heads, and
  DAF-MHSCA's A_s as its channel mean), upsampled to the input image;
- :func:`integrated_gradients` and :func:`grad_cam` (captum; Grad-CAM on the last trunk layer);
- :func:`agreement`: Spearman rank correlation between an attention map and an attribution map;
- :func:`region_mass`: the share of a map's mass inside the regions that carry the expression
  (``FaceData.masks`` of the built-in synthetic data), to be read against :func:`area_fraction`;
- :func:`explain_faces` / :func:`region_table`: all of the above over a set of faces;
- :func:`walkthrough`: one face through ResNet18, AFC, DAF and MHSCA step by step, each step tied
  to its equation of the paper (the teaching notebook).

The notebooks get their models from the report (:func:`fer_lib.report.results.load_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from fer_lib.engine.inputs import model_input
from fer_lib.models import InputSpec, ModelOutput

# Map kinds, in the order tables show them.
ATTENTION_KINDS = ("heads mean", "A_s")
ATTRIBUTION_KINDS = ("integrated gradients", "grad-cam")


# ---------------------------------------------------------------- inputs


def display_images(images: torch.Tensor, size: int) -> np.ndarray:
    """uint8 B x C x H x W -> float B x size x size x 3 in [0, 1], for drawing under the maps."""
    x = images.float().div(255)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def resize_masks(masks: torch.Tensor, size: int) -> np.ndarray:
    """N x H x W region masks -> N x size x size bool (nearest neighbour, so a mask stays a mask)."""
    m = masks.float().unsqueeze(1)
    if m.shape[-1] != size or m.shape[-2] != size:
        m = F.interpolate(m, size=(size, size), mode="nearest")
    return m.squeeze(1).numpy() > 0.5


# ---------------------------------------------------------------- maps


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """B x h x w -> B x H x W, bilinear (the usual way attention maps are laid over a face)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(maps.unsqueeze(1).float(), size=size, mode="bilinear", align_corners=False).squeeze(1)


def attention_maps(output: ModelOutput) -> dict[str, torch.Tensor]:
    """A model's spatial attention at feature resolution, B x h x w each.

    "heads mean": mean over heads of ``head_maps`` (any model that fills it: DAF-MHSCA, DAN, DDAMFN);
    "A_s": DAF-MHSCA's DAF map (Eq. 8), averaged over its C channels. Empty for a model with neither.
    """
    out: dict[str, torch.Tensor] = {}
    if output.head_maps is not None:
        out["heads mean"] = output.head_maps.detach().float().mean(dim=1)
    if output.extras.get("A_s") is not None:
        out["A_s"] = output.extras["A_s"].detach().float().mean(dim=1)
    return out


def _logits(model: nn.Module):
    return lambda x: model(x).logits


def trunk_layer(model: nn.Module) -> nn.Module:
    """The last layer of the model's backbone (ResNet18's layer4 for DAF-MHSCA, DAN and ResNet18):
    ``model.trunk[-1]``, else ``model.backbone`` / ``model.features``'s last child."""
    for name in ("trunk", "backbone", "features"):
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            children = list(part.children())
            return children[-1] if isinstance(part, nn.Sequential) and children else part
    raise ValueError(f"{type(model).__name__} has no .trunk, .backbone or .features: pass the Grad-CAM layer explicitly")


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 32,
                         internal_batch_size: int | None = 64) -> torch.Tensor:
    """|Integrated Gradients| summed over colour channels: B x H x W, same side as ``x``.

    The baseline is zero in the normalised space, i.e. the training mean colour (captum's default):
    unlike a black baseline it does not zero the attribution of the black background of the synthetic
    faces, which would inflate the in-region share for every model alike.
    """
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        attr = IntegratedGradients(_logits(model)).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=steps, internal_batch_size=internal_batch_size)
    return attr.detach().abs().sum(dim=1)


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None = None) -> torch.Tensor:
    """Grad-CAM (captum's LayerGradCam, ReLU applied) on the last trunk layer, upsampled to B x H x W."""
    from captum.attr import LayerGradCam

    layer = layer if layer is not None else trunk_layer(model)
    with torch.enable_grad():
        cam = LayerGradCam(_logits(model), layer).attribute(x, target=target, relu_attributions=True)
    return upsample(cam.detach().sum(dim=1), x.shape[-2:])


# ---------------------------------------------------------------- numbers


def _varies(v: np.ndarray) -> np.ndarray:
    """Per row: does the map vary by more than float noise (1e-6 of its magnitude)? A flat map points nowhere."""
    return np.ptp(v, axis=1) > 1e-6 * np.maximum(np.abs(v).max(axis=1), 1e-12)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image Spearman rank correlation between two B x H x W maps over their pixels (NaN for a flat map)."""
    a, b = np.asarray(a, np.float64).reshape(len(a), -1), np.asarray(b, np.float64).reshape(len(b), -1)
    out = np.full(len(a), np.nan)
    ok = _varies(a) & _varies(b)
    for i in range(len(a)):
        if ok[i]:
            out[i] = spearmanr(a[i], b[i]).statistic
    return out


def agreement(attention: np.ndarray, attribution: np.ndarray) -> float:
    """One number for how well two sets of maps agree: the mean per-image Spearman rank correlation.

    Rank correlation, not IoU of the top-k% pixels: attention (a sigmoid in [0, 1]) and attribution
    (gradient units) live on different scales, ranks ignore that and any monotone rescaling, and no
    k has to be picked. 1 = same ordering of pixels, 0 = unrelated, -1 = opposite.
    """
    rho = spearman(attention, attribution)
    return float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")  # every map flat: no agreement to measure


def area_fraction(masks: np.ndarray) -> np.ndarray:
    """Share of each image's pixels inside its regions: the in-region mass a map spread at random would get."""
    m = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    return m.mean(axis=1)


def region_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image share of a map's mass inside ``masks`` (both B x H x W), after subtracting its minimum
    (NaN for a flat map, which points nowhere).

    The per-image minimum is removed first: sigmoid attention never reaches 0, and a constant floor
    says nothing about where the model looks (for |IG| and Grad-CAM the minimum is already ~0).
    """
    v = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    flat = ~_varies(v)
    v = v - v.min(axis=1, keepdims=True)
    m = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    total = v.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat | (total <= 0), np.nan, (v * m).sum(axis=1) / total)


# ---------------------------------------------------------------- over many faces


@dataclass
class Explanation:
    """Maps of a batch of faces, all B x S x S at the model's input side S (numpy)."""

    images: np.ndarray  # B x S x S x 3 in [0, 1]
    target: np.ndarray  # the class each attribution explains (the prediction)
    probs: np.ndarray  # B x K softmax
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # "heads mean", "A_s"
    attribution: dict[str, np.ndarray] = field(default_factory=dict)  # "integrated gradients", "grad-cam"

    def maps(self) -> dict[str, np.ndarray]:
        return {**self.attention, **self.attribution}


def explain_faces(model: nn.Module, images: torch.Tensor, spec: InputSpec, target: torch.Tensor | None = None,
                  ig_steps: int = 32, batch_size: int = 32) -> Explanation:
    """Attention and attribution maps of uint8 faces ``images`` (B x C x H x W) for one model in eval mode.

    ``target`` None explains the predicted class.
    """
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    probs, targets = [], []
    for start in range(0, len(images), batch_size):
        x = model_input(images[start:start + batch_size], spec)
        with torch.no_grad():
            out = model(x)
        p = out.logits.float().softmax(dim=1)
        t = p.argmax(dim=1) if target is None else target[start:start + batch_size]
        probs.append(p.numpy())
        targets.append(t.numpy())
        for kind, m in attention_maps(out).items():
            parts.setdefault(kind, []).append(upsample(m, spec.size).numpy())
        parts.setdefault("integrated gradients", []).append(integrated_gradients(model, x, t, ig_steps).numpy())
        try:
            parts.setdefault("grad-cam", []).append(grad_cam(model, x, t).numpy())
        except ValueError:
            parts.pop("grad-cam", None)  # no trunk to hook: Grad-CAM is left out for this model
    joined = {k: np.concatenate(v) for k, v in parts.items() if len(v) == len(probs)}
    return Explanation(
        images=display_images(images, spec.size),
        target=np.concatenate(targets),
        probs=np.concatenate(probs),
        attention={k: joined[k] for k in ATTENTION_KINDS if k in joined},
        attribution={k: joined[k] for k in ATTRIBUTION_KINDS if k in joined},
    )


def agreement_table(exp: Explanation) -> pd.DataFrame:
    """Spearman agreement of every attention kind with every attribution kind (rows x columns)."""
    table = pd.DataFrame(index=list(exp.attention), columns=list(exp.attribution), dtype=float)
    for a, amap in exp.attention.items():
        for b, bmap in exp.attribution.items():
            table.loc[a, b] = agreement(amap, bmap)
    table.index.name = "attention \\ attribution"
    return table


def region_table(exp: Explanation, masks: np.ndarray) -> pd.DataFrame:
    """For each map kind: mean and std over faces of the in-region mass, the region area and their ratio (lift, 1 = chance)."""
    area = area_fraction(masks)
    rows = []
    for kind, maps in exp.maps().items():
        mass = region_mass(maps, masks)
        ok = np.isfinite(mass)  # faces where the map is flat point nowhere; flat on all of them: NaN, 0 faces
        rows.append({
            "map": kind,
            "family": "attention" if kind in exp.attention else "attribution",
            "mass in regions": float(mass[ok].mean()) if ok.any() else float("nan"),
            "std over faces": float(mass[ok].std()) if ok.any() else float("nan"),
            "region area": float(area[ok].mean()) if ok.any() else float(area.mean()),
            "lift (mass / area)": float((mass[ok] / area[ok]).mean()) if ok.any() else float("nan"),
            "faces": int(ok.sum()),
        })
    return pd.DataFrame(rows)


def overlay_figure(exp: Explanation, rows: Sequence[int], classes: Sequence[str], title: str = "",
                   labels: Sequence[int] | None = None) -> Any:
    """A matplotlib grid: one face per row, its image then each map laid over it."""
    import matplotlib.pyplot as plt

    kinds = list(exp.maps())
    fig, axes = plt.subplots(len(rows), 1 + len(kinds), figsize=(2.1 * (1 + len(kinds)), 2.2 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        ax = axes[r, 0]
        ax.imshow(exp.images[i])
        head = f"PL {classes[exp.target[i]]} ({exp.probs[i].max():.2f})"
        if labels is not None:
            head = f"TL {classes[labels[r]]}\n" + head
        ax.set_title(head, fontsize=8)
        for c, kind in enumerate(kinds, start=1):
            ax = axes[r, c]
            ax.imshow(exp.images[i].mean(axis=2), cmap="gray")
            ax.imshow(exp.maps()[kind][i], cmap="jet", alpha=0.5)
            if r == 0:
                ax.set_title(kind, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the walkthrough


@dataclass
class Step:
    """One stage of the forward pass: what it is, the equation it computes, and its output."""

    block: str
    name: str
    equation: str
    value: torch.Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)


# What the walkthrough shows of each block: (name recorded by the model, label, equation).
WALK_AFC = (("x_F1", "x_F1: 3x3 conv, dilation 1", "Eq. 1"), ("x_F2", "x_F2: 3x3 conv, dilation 2", "Eq. 1"),
            ("x_F3", "x_F3: 3x3 conv, dilation 4", "Eq. 1"), ("x_Fsum", "x_Fsum", "Eq. 1"),
            ("x_Fint", "x_Fint = ReLU(BN(Conv1x1(x_Fsum)))", "Eq. 2"), ("x_FcalS", "x_FcalS = sigma(Conv1x1(x_F)) * x_Fint", "Eq. 2"),
            ("x_FDre", "x_FDre = Conv1x1(GAP(x_FcalS))", "Eq. 3"), ("x_FcalC", "x_FcalC = sigma(x_FDra) * x_FcalS", "Eq. 3"),
            ("x_F'", "x_F' = x_F + x_FcalC", "Eq. 3"))
WALK_DAF = (("x_H", "x_H = Conv1x1(GDConv_H(Conv1x1(x_F'))) (tokens: one per row)", "Eq. 4"),
            ("x_W", "x_W (tokens: one per column)", "Eq. 4"), ("Q_H", "Q_H", "Eq. 5"), ("Q_W", "Q_W", "Eq. 5"),
            ("x_Ha", "x_Ha = softmax(Q_H K_H^T / sqrt(C)) V_H", "Eq. 6"), ("x_Wa", "x_Wa", "Eq. 6"),
            ("x_Ca", "x_Ca = concat(H->W, W->H) W_Ca", "Eq. 7"), ("a_H", "sigma(x_Ha + x_Ca) (per row)", "Eq. 8"),
            ("a_W", "sigma(x_Wa + x_Ca) (per column)", "Eq. 8"), ("A_s", "A_s (outer product over rows and columns)", "Eq. 8"),
            ("A_c", "A_c = GAP(A_s)", "Eq. 12"))
WALK_HEAD = (("gate", "sigma(Conv3x3 + Conv1x3 + Conv3x1 of Conv1x1(x_F'))", "Eq. 9"), ("x_s", "x_s = gate * x_F'", "Eq. 9"),
             ("x_s_tilde", "x~_s = A_s * x_s", "Eq. 10"), ("x_c", "x_c = sigma(MLP(GAP(x~_s))) * GAP(x~_s)", "Eq. 11"),
             ("x_c_tilde", "x~_c = A_c * x_c", "Eq. 12"))


def walkthrough(model: nn.Module, x: torch.Tensor, head: int = 0) -> list[Step]:
    """One forward pass of DAF-MHSCA with every intermediate: the trunk layer by layer, then what the
    AFC, DAF and MHSCA modules record under :func:`fer_lib.models.daf_mhsca.traced`, each tied to its equation.

    ``head`` selects which MHSCA head is shown step by step (all heads enter Eq. 13).
    """
    from fer_lib.models.daf_mhsca import traced

    model.eval()
    steps: list[Step] = [Step("input", "x_I", "Sec. 2.2, normalised face", x)]
    names = ("conv1 7x7/2", "bn1", "relu", "maxpool 3x3/2", "layer1", "layer2", "layer3", "layer4")
    h = x
    with torch.no_grad():
        for name, layer in zip(names, model.trunk):
            h = layer(h.clone())  # torchvision's ReLU works in place: keep each stored step intact
            steps.append(Step("ResNet18", name, "Sec. 2.2: x_F (H/32 x W/32 x 512)" if name == "layer4" else "Sec. 2.2", h))
        with traced(model) as rec:
            model(x)
    for block, key, table in (("AFC", "afc", WALK_AFC), ("DAF", "daf", WALK_DAF), ("MHSCA", f"mhsca.heads.{head}", WALK_HEAD)):
        if key in rec and rec[key]:
            tag = f"head {head}: " if block == "MHSCA" else ""
            steps += [Step(block, tag + label, eq, rec[key][name]) for name, label, eq in table]
    top = rec[""]
    if "mhsca" in rec and rec["mhsca"]:
        steps.append(Step("MHSCA", f"x_out = sum of {len(model.mhsca.heads)} heads' x~_c", "Eq. 13", top["x_out"]))
    else:
        steps.append(Step("classifier", "GAP(x_F' * A_s) (w/o MHSCA)", "Table 4", top["x_out"]))
    steps.append(Step("classifier", "logits = Linear(x_out)", "Sec. 2.4, after Eq. 13", top["logits"]))
    return steps


def steps_table(steps: Sequence[Step]) -> pd.DataFrame:
    """The walkthrough as a table: block, step, equation, shape, and the value range."""
    return pd.DataFrame([
        {"block": s.block, "step": s.name, "equation": s.equation, "shape": " x ".join(map(str, s.shape)),
         "min": float(s.value.min()), "max": float(s.value.max())}
        for s in steps
    ])
