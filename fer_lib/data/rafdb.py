"""RAF-DB basic (Li et al. 2017): ``EmoLabel/list_patition_label.txt`` and ``Image/aligned/<stem>_aligned.jpg``.

The label file (its official, misspelt name) has lines ``train_00001.jpg 5``; labels 1-7. The split
comes from the file-name prefix: 12,271 train and 3,068 test faces. RAF-DB ships no validation
split: ``val_fraction`` moves a stratified share of train to val (default 0, as the paper trains on all).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fer_lib.data import SPLITS, DatasetError, DatasetInfo, FaceData, data_root, register_dataset
from fer_lib.data.cache import cached, file_digest, listing_digest
from fer_lib.data.images import DECODE_VERSION, DEFAULT_STORED_SIZE, check_splits, decode_images, require_file, val_from_train

# labels 1-7 of list_patition_label.txt, in that order
RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
IMAGE_DIR = Path("Image") / "aligned"


def find_rafdb(root: str | os.PathLike | None = None) -> Path:
    """The RAF-DB basic folder (holding ``EmoLabel/``) under ``root``: ``root/rafdb``, ``root/RAF-DB/basic`` or ``root``."""
    base = data_root(root)
    for folder in (base / "rafdb", base / "RAF-DB" / "basic", base / "basic", base):
        if (folder / LABEL_FILE).is_file():
            return folder
    return require_file(base / "rafdb" / LABEL_FILE, "RAF-DB label file")


def read_partition(path: Path) -> tuple[list[str], list[int], list[int]]:
    """Parse ``list_patition_label.txt``: (file names, labels 0-6, split codes)."""
    names, labels, split = [], [], []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"{path}: line {n}: {line!r} is not '<name>.jpg <label>'; fix or re-download the file")
        name, label = parts[0], int(parts[1])
        if not 1 <= label <= len(RAFDB_CLASSES):
            raise DatasetError(f"{path}: line {n}: label {label} is outside 1-7 ({', '.join(RAFDB_CLASSES)}); fix that line")
        prefix = name.split("_", 1)[0]
        if prefix not in ("train", "test"):
            raise DatasetError(f"{path}: line {n}: {name!r} starts neither with train_ nor test_; fix that line")
        names.append(name)
        labels.append(label - 1)
        split.append(SPLITS.index(prefix))
    if not names:
        raise DatasetError(f"{path}: no labelled images; re-download the RAF-DB basic label file")
    return names, labels, split


# Table 2 prints lr 0.1 for RAF-DB (with Adam it diverges: the engine's recipe "ours" uses 1e-4).
RAFDB = DatasetInfo(label="RAF-DB", classes=RAFDB_CLASSES, stored_side=DEFAULT_STORED_SIZE,
                    table2={"lr": 0.1, "batch_size": 256}, find=find_rafdb)


@register_dataset("rafdb", RAFDB)
def load_rafdb(
    root: str | os.PathLike | None = None,
    image_size: int = DEFAULT_STORED_SIZE,
    val_fraction: float = 0.0,
    seed: int = 0,
    cache: bool = True,
) -> FaceData:
    """RAF-DB basic, 7 classes, aligned 100 x 100 faces stored at ``image_size`` px (RGB)."""
    base = find_rafdb(root)
    label_path = base / LABEL_FILE
    names, labels, split = read_partition(label_path)
    paths = [base / IMAGE_DIR / f"{Path(n).stem}_aligned.jpg" for n in names]
    for p in paths:
        if not p.is_file():
            raise DatasetError(f"{p}: aligned image listed in {label_path} is missing; unpack Image/aligned/ there")

    def build() -> FaceData:
        split_t = torch.tensor(split, dtype=torch.int8)
        check_splits(split_t, ("train", "test"), str(label_path))
        images = decode_images(paths, image_size, 3, desc="decoding RAF-DB")
        return FaceData("rafdb", RAFDB_CLASSES, images, torch.tensor(labels, dtype=torch.int64), split_t, source=str(base))

    key = {"sources": {"labels": file_digest(label_path), "images": listing_digest(paths, base)}, "size": image_size,
           "decode": DECODE_VERSION}
    data = cached("rafdb", key, build, cache)
    data.split = val_from_train(data.split, data.labels, val_fraction, seed)
    return data
