"""Any ``<split>/<class>/*.jpg`` image folder (torchvision ImageFolder layout, one folder per split).

Split folders: ``train`` (or ``training``), ``val`` (``valid``, ``validation``), ``test`` (``testing``).
Classes are the class folder names in sorted order (as ImageFolder), unless ``classes`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from fer_lib.data import SPLITS, DatasetError, DatasetInfo, FaceData, data_root, register_dataset
from fer_lib.data.cache import cached, listing_digest
from fer_lib.data.images import DECODE_VERSION, DEFAULT_STORED_SIZE, IMAGE_SUFFIXES, check_splits, decode_images

SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}


def scan_folder(base: Path) -> dict[str, dict[str, list[Path]]]:
    """``{split: {class folder name: sorted image paths}}`` of a split/class folder tree (checked: every
    class folder of val/ and test/ has its train/ folder)."""
    if not base.is_dir():
        raise DatasetError(f"{base}: folder not found; pass root=... pointing at the folder holding train/ and test/")
    found: dict[str, dict[str, list[Path]]] = {}
    dirs: dict[str, Path] = {}
    for split_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        split = SPLIT_FOLDERS.get(split_dir.name.lower())
        if split is None:
            continue
        if split in found:
            raise DatasetError(f"{split_dir}: a second folder for the {split!r} split; keep one of them")
        class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
        if not class_dirs:
            raise DatasetError(f"{split_dir}: the {split!r} split has no class folders (expected {split_dir.name}/<class>/*.jpg)")
        found[split], dirs[split] = {}, split_dir
        for class_dir in class_dirs:
            files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DatasetError(f"{class_dir}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} images); "
                                   "add its images or delete the folder")
            found[split][class_dir.name] = files
    if "train" not in found:
        raise DatasetError(f"{base}: no train/ folder; expected {base}/train/<class>/*.jpg (and test/, optionally val/)")
    for split, per_class in found.items():
        for class_name in per_class:
            if class_name not in found["train"]:
                raise DatasetError(f"{dirs[split] / class_name}: class {class_name!r} has no training images "
                                   f"({dirs['train'] / class_name} is missing); add them there or remove that folder")
    return {s: found[s] for s in SPLITS if s in found}


# Classes are the folder names; not in Table 2 (the engine uses the FER2013 row and says so).
FOLDER = DatasetInfo(label="image folder", stored_side=DEFAULT_STORED_SIZE)


@register_dataset("folder", FOLDER)
def load_folder(
    root: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    image_size: int = DEFAULT_STORED_SIZE,
    channels: int = 3,
    name: str = "folder",
    cache: bool = True,
) -> FaceData:
    """Images under ``root/<split>/<class>/`` (or ``$FER_DATA/folder``), stored at ``image_size`` px.

    ``classes`` fixes the class order (a class folder outside it is an error); by default the sorted
    union of class folder names. train and test are required, val is optional.
    """
    base = data_root(root)
    if root is None:
        base = base / "folder"
    found = scan_folder(base)
    names = tuple(classes) if classes is not None else tuple(sorted({c for per in found.values() for c in per}))
    paths, labels, split = [], [], []
    for split_name, per_class in found.items():
        for class_name, files in per_class.items():
            if class_name not in names:
                raise DatasetError(f"{base / split_name / class_name}: class folder not in classes={list(names)}; "
                                   "rename it or pass classes=...")
            paths += files
            labels += [names.index(class_name)] * len(files)
            split += [SPLITS.index(split_name)] * len(files)

    def build() -> FaceData:
        split_t = torch.tensor(split, dtype=torch.int8)
        check_splits(split_t, ("train", "test"), str(base))
        images = decode_images(paths, image_size, channels, desc=f"decoding {base.name}")
        return FaceData(name, names, images, torch.tensor(labels, dtype=torch.int64), split_t, source=str(base))

    key = {"sources": {"images": listing_digest(paths, base)}, "base": str(base.resolve()), "classes": names, "size": image_size,
           "channels": channels, "decode": DECODE_VERSION}
    return cached(name, key, build, cache)
