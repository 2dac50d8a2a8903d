"""Shared pieces of the file-based loaders: image decoding (8 bit, checked) with a progress bar, and split checks."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from fer_lib.data import SPLITS, DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_STORED_SIZE = 112  # RAF-DB / AffectNet / folders are stored at this size; Augment resizes to the model's
# In the cache keys of the image loaders: raised whenever read_image returns other pixels for the same file
# (2: 16-bit images scaled to 8 bit, no longer clipped at 255), so no cache decoded the old way is read.
DECODE_VERSION = 2


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # how PIL opens 16-bit grey PNG / TIFF files


class ImageProblem(ValueError):
    """An image file that cannot be used; the message is the one-line reason, without the path."""


def to_8bit(im: Image.Image, mode: str) -> Image.Image:
    """``im`` in ``mode`` ('L' or 'RGB'); 16-bit grey is scaled by 255 / 65535 (PIL's convert would clip it at 255)."""
    if im.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(im).astype(np.float64)
        im = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))
    return im if im.mode == mode else im.convert(mode)


def load_image(path: str | os.PathLike, mode: str, orient: bool = False) -> Image.Image:
    """``path`` fully decoded as ``mode`` ('L' or 'RGB'), 16-bit files scaled to 8 bit (``orient``: EXIF rotation applied).

    Raises FileNotFoundError for a missing file and :class:`ImageProblem` for a folder, an unreadable,
    empty or truncated file, or a decompression bomb (over PIL's ``Image.MAX_IMAGE_PIXELS`` twice).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # full decode here: a truncated file raises now, not later
            if orient:
                im = ImageOps.exif_transpose(im)
            return to_8bit(im, mode)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ImageProblem("a folder, not an image file") from None
    except PermissionError:
        raise ImageProblem("cannot be read (permission denied)") from None
    except Image.DecompressionBombError as err:
        raise ImageProblem(f"refused as a possible decompression bomb ({err}); if the image is genuine, "
                           "raise PIL.Image.MAX_IMAGE_PIXELS") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        empty = path.is_file() and path.stat().st_size == 0
        raise ImageProblem("unreadable or truncated image (" + ("an empty file, 0 bytes" if empty else str(err).splitlines()[0])
                           + ")") from None


def read_image(path: Path, size: int | None, channels: int, box: Sequence[int] | None = None) -> np.ndarray:
    """One image as ``channels`` x size x size uint8 (``size`` None keeps it as is); ``box`` = (x, y, w, h) crop first.

    A box reaching past the border is padded with black; one wholly outside the image is an error.
    """
    try:
        im = load_image(path, "L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file is missing; put it back or remove its row from the label file") from None
    except ImageProblem as err:
        raise DatasetError(f"{path}: {err}; replace the file or remove it") from None
    if box is not None:
        x, y, w, h = (int(v) for v in box)
        if w <= 0 or h <= 0:
            raise DatasetError(f"{path}: face box {tuple(box)} is empty; fix its row in the label file")
        if x >= im.width or y >= im.height or x + w <= 0 or y + h <= 0:
            raise DatasetError(f"{path}: face box (x, y, w, h) = {(x, y, w, h)} lies wholly outside the "
                               f"{im.width} x {im.height} image; fix or drop its row in the label file")
        im = im.crop((x, y, x + w, y + h))
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
    where: Sequence[str] | None = None,
) -> torch.Tensor:
    """Decode many images into one N x channels x size x size uint8 tensor (threads, tqdm progress bar).

    ``where`` names each image's row in its label file (e.g. ``training.csv line 7``) in its errors."""
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)

    def work(i: int) -> None:
        try:
            out[i] = read_image(paths[i], size, channels, None if boxes is None else boxes[i])
        except DatasetError as err:
            if where is None:
                raise
            raise DatasetError(f"{where[i]}: {err}") from None

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
