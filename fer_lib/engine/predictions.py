"""Which test faces a run got right: ``predictions.json`` beside its record, for paired tests.

The file holds the test split's row indices and labels, the predicted class of every face at the
epoch chosen on validation (``best_val``) and at the last epoch (``last``), the data fingerprint, and
``check``: per selection the recorded and the recomputed test accuracy and how many faces moved
between cells of the confusion matrix (a lower bound on the faces predicted differently).
Predictions are made in the precision the run was evaluated in while training (bf16 with channels_last or fp32);
they may still differ from the record on a few borderline faces (at most :func:`tolerated_faces`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from fer_lib.engine.evaluate import classification_metrics, predict_indices
from fer_lib.engine.inputs import load_data
from fer_lib.engine.recipes import ConfigError
from fer_lib.engine.records import RunRecord, atomic_write_json, read_json
from fer_lib.engine.runs import load_model

PREDICTIONS = "predictions.json"
STORED = ("best_val", "last")  # the selections whose predictions are kept
HOW_TO_WRITE = ("write it with scripts/cpu_study.py --predictions (study runs) "
                "or scripts/paired.py (any two runs)")  # said wherever predictions.json is missing


def tolerated_faces(n: int) -> int:
    """Faces of ``n`` whose prediction may differ from the record (batch composition, kernels): 0.2 %, at least 3."""
    return max(3, math.ceil(0.002 * n))


def write_predictions(run_dir: Path, record: RunRecord, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Predict the test split with the run's ``best_val`` and ``last`` checkpoints and write
    ``run_dir/predictions.json`` atomically (``run_dir`` is normally ``record.dir``); returns its content.

    Raises ConfigError where the data at hand is not the record's, FileNotFoundError where a
    checkpoint is missing, and RuntimeError where the predictions do not reproduce the record's test
    metrics (more faces moved than :func:`tolerated_faces`): they would not be that record's evidence.
    """
    data, _ = load_data(record.plan["dataset"], **record.plan.get("data_options", {}))
    if data.fingerprint != record.data.get("fingerprint"):
        raise ConfigError(f"{record.id} was trained on data {record.data.get('fingerprint')}, not on the data at hand ({data.fingerprint})")
    indices = data.indices("test")
    labels = data.labels[indices].numpy()
    out: dict[str, Any] = {"split": "test", "indices": indices.tolist(), "labels": labels.tolist(),
                           "fingerprint": record.data["fingerprint"], "check": {}}
    for which in STORED:
        block = record.metrics.get(which)
        if not block or not block.get("test"):
            out[which] = None  # no validation split: no best_val selection
            continue
        model, spec = load_model(record, which, device)
        bf16 = record.env.get("precision") == "bf16"  # predict as the trainer evaluated: same precision and layout
        if bf16:
            model = model.to(memory_format=torch.channels_last)
        logits = predict_indices(model, data, indices, spec, batch_size=record.plan["eval_batch_size"], device=device,
                                 keep=("logits",), bf16=bf16)["logits"]
        preds = logits.argmax(1)
        fresh = classification_metrics(labels, preds, record.num_classes)
        moved = int(np.abs(np.asarray(fresh["confusion"]) - np.asarray(block["test"]["confusion"])).sum()) // 2
        out[which] = preds.tolist()
        out["check"][which] = {"recorded_accuracy": block["test"]["accuracy"], "recomputed_accuracy": fresh["accuracy"],
                               "faces_moved": moved}
        if moved > tolerated_faces(len(labels)):
            raise RuntimeError(f"{record.id} {which}: the predictions move {moved} test faces from the recorded confusion "
                               f"matrix (accuracy {fresh['accuracy']:.4f} vs recorded {block['test']['accuracy']:.4f}; "
                               f"at most {tolerated_faces(len(labels))} tolerated)")
    atomic_write_json(Path(run_dir) / PREDICTIONS, out)
    return out


def load_correct(record: RunRecord, selection: str = "best_val") -> np.ndarray | None:
    """Per-face correctness (0/1, int8) on the test split in ascending row order, or None where
    ``predictions.json`` is absent or holds no such selection. Raises ValueError where it was made on other data."""
    if selection not in STORED:
        raise ValueError(f"selection must be one of {STORED}, not {selection!r}")
    path = record.dir / PREDICTIONS
    if not path.exists():
        return None
    stored = read_json(path)
    if stored["fingerprint"] != record.data.get("fingerprint"):
        raise ValueError(f"{path} was made on data {stored['fingerprint']}, not the record's {record.data.get('fingerprint')}")
    if stored.get(selection) is None:
        return None
    order = np.argsort(stored["indices"], kind="stable")
    return (np.asarray(stored[selection]) == np.asarray(stored["labels"]))[order].astype(np.int8)


def correct_matrix(records: Sequence[RunRecord], selection: str = "best_val") -> np.ndarray | None:
    """S x F correctness of runs on the same data (row s = ``records[s]``), ready for
    :func:`fer_lib.engine.evidence.paired_difference`: pair two configs by passing their runs in the
    same seed order. None where any run lacks predictions; ValueError where the runs' data differ."""
    if len({r.data.get("fingerprint") for r in records}) > 1:
        raise ValueError("the runs were trained and tested on different data: their faces cannot be paired")
    rows = [load_correct(r, selection) for r in records]
    if not rows or any(row is None for row in rows):
        return None
    return np.stack(rows)
