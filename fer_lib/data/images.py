"""Shared pieces of the file-based loaders: image decoding with a progress bar, and split checks."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from fer_lib.data import SPLITS, DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_STORED_SIZE = 112  # RAF-DB / AffectNet / folders are stored at this size; Augment resizes to the model's


def read_image(path: Path, size: int | None, channels: int, box: Sequence[int] | None = None) -> np.ndarray:
    """One image as ``channels`` x size x size uint8 (``size`` None keeps it as is); ``box`` = (x, y, w, h) crop first."""
    try:
        with Image.open(path) as im:
            im.load()  # full decode here: a truncated file raises now, not later
            im = im.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file is missing; put it back or remove its row from the label file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable or truncated image ({err}); replace the file or remove it") from None
    if box is not None:
        x, y, w, h = (int(v) for v in box)
        if w <= 0 or h <= 0:
            raise DatasetError(f"{path}: face box {tuple(box)} is empty; fix its row in the label file")
        im = im.crop((x, y, x + w, y + h))  # PIL pads a box reaching past the border with black
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode_images(
    paths: Sequence[Path],
    size: int,
    channels: int = 3,
    boxes: Sequence[Sequence[int]] | None = None,
    desc: str = "decoding",
    workers: int | None = None,
) -> torch.Tensor:
    """Decode many images into one N x channels x size x size uint8 tensor (threads, tqdm progress bar)."""
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = read_image(paths[i], size, channels, None if boxes is None else boxes[i])

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        for _ in tqdm(pool.map(work, range(len(paths))), total=len(paths), desc=desc, unit="img", leave=False,
                      disable=len(paths) < 256):
            pass
    return torch.from_numpy(out)


def check_splits(split: torch.Tensor, required: Sequence[str], where: str) -> None:
    """Raise :class:`DatasetError` if a split the dataset defines has no samples."""
    for name in required:
        if not bool((split == SPLITS.index(name)).any()):
            raise DatasetError(f"{where}: the {name!r} split has no samples; check the split column or folder names")


def val_from_train(split: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Move a class-stratified ``fraction`` of the training rows to 'val' (for datasets that ship no val split)."""
    if fraction <= 0:
        return split
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), not {fraction}")
    split = split.clone()
    g = torch.Generator().manual_seed(seed)
    train = torch.nonzero(split == 0).flatten()
    for c in labels[train].unique():
        rows = train[labels[train] == c]
        take = rows[torch.randperm(len(rows), generator=g)[: int(round(fraction * len(rows)))]]
        split[take] = SPLITS.index("val")
    return split


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise :class:`DatasetError` naming it and the fix."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found; put the file there, or pass root=... / set $FER_DATA "
                           "(see docs/data.md for each dataset's layout)")
    return path
