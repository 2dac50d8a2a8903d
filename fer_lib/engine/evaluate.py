"""Evaluation: predictions over a split, the metrics of a run, and their mean and std over seeds."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score
from torch import nn

from fer_lib.data import FaceData
from fer_lib.engine.inputs import model_input
from fer_lib.models import InputSpec

# Where each block of run.metrics comes from.
SELECTIONS = {
    "last": "the last epoch",
    "best_val": "the epoch with the highest validation accuracy (earliest on ties)",
    "best_test": "the epoch with the highest test accuracy: selected on the test split, as DAN and DDAMFN report",
}


def classification_metrics(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall and confusion matrix (rows true, columns predicted)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    classes = list(range(num_classes))
    present = np.unique(labels)
    return {
        "n": int(labels.size),
        "accuracy": float((labels == preds).mean()) if labels.size else float("nan"),
        # Mean recall over the classes present in the split (scikit-learn's definition).
        "balanced_accuracy": float(balanced_accuracy_score(labels, preds)) if present.size else float("nan"),
        "per_class_recall": [float(r) for r in recall_score(labels, preds, labels=classes, average=None, zero_division=0)],
        "confusion": confusion_matrix(labels, preds, labels=classes).tolist(),
    }


@torch.inference_mode()
def predict_indices(
    model: nn.Module,
    data: FaceData,
    indices: torch.Tensor,
    spec: InputSpec,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    keep: Sequence[str] = ("logits", "features", "head_maps"),
    images: torch.Tensor | None = None,
    bf16: bool | None = None,
) -> dict[str, np.ndarray | None]:
    """Forward ``data`` rows ``indices`` in eval mode without augmentation; numpy outputs named in ``keep``.

    ``images`` may be ``data.images`` already moved to ``device`` (the engine keeps it there).
    ``bf16``: autocast to bfloat16 with channels_last (None: on CUDA only; the trainer passes its precision).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images = data.images if images is None else images
    was_training = model.training
    model.eval()
    bf16 = device.type == "cuda" if bf16 is None else bf16
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keep}
    has: dict[str, bool] = {k: True for k in keep}
    for batch in indices.split(batch_size):
        x = model_input(images[batch.to(images.device)].to(device, non_blocking=True), spec)
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        for k in keep:
            value = getattr(out, k, None)
            if value is None:
                has[k] = False
            else:
                parts[k].append(value.float().cpu())
    model.train(was_training)
    result: dict[str, np.ndarray | None] = {
        k: (torch.cat(v).numpy() if has[k] and v else None) for k, v in parts.items()
    }
    result["labels"] = data.labels[indices].numpy()
    result["indices"] = indices.numpy()
    return result


def predict(
    model: nn.Module,
    data: FaceData,
    split: str = "test",
    max_samples: int | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> dict[str, np.ndarray | None]:
    """Predictions of ``model`` on one split: numpy ``logits``, ``labels``, ``features``, ``head_maps``
    (None if the model has none) and ``indices`` (rows of ``data``). ``max_samples`` keeps the first rows."""
    indices = data.indices(split)
    if max_samples is not None:
        indices = indices[:max_samples]
    spec = getattr(model, "input_spec", InputSpec())
    return predict_indices(model, data, indices, spec, batch_size=batch_size, device=device)


def select_epochs(history: list[dict[str, Any]]) -> dict[str, Any]:
    """run.metrics from per-epoch history rows holding ``val`` and ``test`` metric blocks."""
    if not history:
        raise ValueError("no epochs in the history")

    def block(row: dict[str, Any], selection: str) -> dict[str, Any]:
        return {"epoch": row["epoch"], "selected_by": SELECTIONS[selection], "val": row.get("val"), "test": row.get("test")}

    def best(split: str) -> dict[str, Any] | None:
        rows = [r for r in history if r.get(split) and not math.isnan(r[split]["accuracy"])]
        return max(rows, key=lambda r: (r[split]["accuracy"], -r["epoch"])) if rows else None

    metrics: dict[str, Any] = {"last": block(history[-1], "last")}
    for name, split in (("best_val", "val"), ("best_test", "test")):
        row = best(split)
        metrics[name] = block(row, name) if row is not None else None
    return metrics


# A drop of training accuracy this large (points) between two epochs counts as a fall (docs/cpu_study.md).
FALL_POINTS = 2.5


def largest_drop(history: Sequence[dict[str, Any]], key: str = "train_accuracy") -> float:
    """The largest fall of ``key`` (training accuracy; ``val_accuracy`` for a stall) from one epoch to the next,
    in points (0.0 if it never fell)."""
    acc = [100 * r[key] for r in history if key in r]
    return max([0.0] + [a - b for a, b in zip(acc, acc[1:])])


def aggregate_seeds(runs: Iterable[Any], keys: Sequence[str] = ("accuracy", "balanced_accuracy")) -> dict[str, Any]:
    """Mean and sample std (ddof 1; 0 for a single seed) over runs that differ only by seed.

    Returns ``{"seeds": [...], "n": k, "<selection>/<split>/<key>": {"mean", "std", "values"}}``
    for every selection (last, best_val, best_test), split (val, test) and metric key.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to aggregate")
    base = {k: v for k, v in runs[0].config.to_dict().items() if k != "seed"}
    for run in runs[1:]:
        other = {k: v for k, v in run.config.to_dict().items() if k != "seed"}
        if other != base:
            raise ValueError(f"run {run.id} differs from {runs[0].id} by more than the seed")
    out: dict[str, Any] = {"seeds": [r.config.seed for r in runs], "n": len(runs)}
    for selection in SELECTIONS:
        for split in ("val", "test"):
            for key in keys:
                values = []
                for run in runs:
                    chosen = run.metrics.get(selection)
                    if chosen and chosen.get(split):
                        values.append(float(chosen[split][key]))
                if len(values) == len(runs):
                    arr = np.array(values)
                    out[f"{selection}/{split}/{key}"] = {
                        "mean": float(arr.mean()),
                        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                        "values": values,
                    }
    return out
