"""AffectNet (Mollahosseini et al. 2017), manually annotated part: ``training.csv`` / ``validation.csv``.

Columns: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression,
valence, arousal. Faces are cropped from ``Manually_Annotated_Images/<subDirectory_filePath>`` by the
box columns (a box wholly outside its image is a DatasetError naming the csv line; one reaching
past the border is padded with black). Expression 0-7 are the classes; 8-10 (none, uncertain,
no-face) are dropped, and AffectNet-7 also drops contempt. As in the literature the validation set is the test split
(3,500 / 4,000 faces); ``val_fraction`` carves a validation split from train (default 0).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fer_lib.data import SPLITS, DatasetError, DatasetInfo, FaceData, data_root, register_dataset
from fer_lib.data.cache import cached, file_digest, listing_digest
from fer_lib.data.images import DECODE_VERSION, DEFAULT_STORED_SIZE, check_splits, decode_images, require_file, val_from_train

# expression 0-7 of the csv files, in that order
AFFECTNET8_CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
AFFECTNET7_CLASSES = AFFECTNET8_CLASSES[:7]
CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
               "expression", "valence", "arousal")
USED_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")
MAX_EXPRESSION = 10  # 8 none, 9 uncertain, 10 no-face
CSV_SPLITS = {"training.csv": "train", "validation.csv": "test"}
IMAGE_DIRS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images", "images")


def find_affectnet(root: str | os.PathLike | None = None) -> Path:
    """The AffectNet folder (holding ``training.csv``) under ``root``: ``root/affectnet``, ``root/AffectNet`` or ``root``."""
    base = data_root(root)
    for folder in (base / "affectnet", base / "AffectNet", base):
        if (folder / "training.csv").is_file():
            return folder
    return require_file(base / "affectnet" / "training.csv", "AffectNet training.csv")


def read_affectnet_csv(path: Path) -> pd.DataFrame:
    """Read and check one AffectNet csv (columns, box values, expression 0-10)."""
    require_file(path, "AffectNet label file")
    try:
        table = pd.read_csv(path, dtype={"subDirectory_filePath": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise DatasetError(f"{path}: not a readable csv ({err}); re-download it") from None
    missing = [c for c in USED_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: columns {list(table.columns)} lack {missing}; the official header is {','.join(CSV_COLUMNS)}")
    numbers = table[list(USED_COLUMNS[1:])].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().any(axis=1) | ~numbers["expression"].isin(range(MAX_EXPRESSION + 1))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DatasetError(f"{path}: line {row + 2}: box/expression {table.loc[row, list(USED_COLUMNS[1:])].tolist()} "
                           f"is not numbers with expression 0-{MAX_EXPRESSION}; fix or drop that row")
    table[list(USED_COLUMNS[1:])] = numbers.astype(np.int64)
    return table


def _load(name: str, num_classes: int, root, image_size: int, val_fraction: float, seed: int, cache: bool,
          images_dir: str | None) -> FaceData:
    base = find_affectnet(root)
    image_root = base / images_dir if images_dir else next((base / d for d in IMAGE_DIRS if (base / d).is_dir()), None)
    if image_root is None or not image_root.is_dir():
        raise DatasetError(f"{base / IMAGE_DIRS[0]}: AffectNet image folder not found; unpack Manually_Annotated_Images "
                           "there or pass images_dir=...")
    paths, boxes, labels, split, rows, digests = [], [], [], [], [], {}
    for csv_name, split_name in CSV_SPLITS.items():
        csv_path = base / csv_name
        table = read_affectnet_csv(csv_path)
        digests[csv_name] = file_digest(csv_path)
        table = table[table["expression"] < num_classes]
        for row, rel, x, y, w, h, expr in table[list(USED_COLUMNS)].itertuples(index=True):
            paths.append(image_root / rel)
            boxes.append((x, y, w, h))
            labels.append(expr)
            split.append(SPLITS.index(split_name))
            rows.append(f"{csv_path} line {row + 2}")
    split_t = torch.tensor(split, dtype=torch.int8)
    check_splits(split_t, ("train", "test"), str(base))
    for p in paths:
        if not p.is_file():
            raise DatasetError(f"{p}: image listed in {base}'s csv files is missing; unpack the images there")

    def build() -> FaceData:
        images = decode_images(paths, image_size, 3, boxes=boxes, desc=f"decoding {name}", where=rows)
        classes = AFFECTNET8_CLASSES[:num_classes]
        return FaceData(name, classes, images, torch.tensor(labels, dtype=torch.int64), split_t, source=str(base))

    key = {"sources": {**digests, "images": listing_digest(paths, base)}, "size": image_size, "decode": DECODE_VERSION}
    data = cached(name, key, build, cache)
    data.split = val_from_train(data.split, data.labels, val_fraction, seed)
    return data


AFFECTNET7 = DatasetInfo(label="AffectNet-7", classes=AFFECTNET7_CLASSES, stored_side=DEFAULT_STORED_SIZE,
                         table2={"lr": 1e-4, "batch_size": 256}, find=find_affectnet)
AFFECTNET8 = DatasetInfo(label="AffectNet-8", classes=AFFECTNET8_CLASSES, stored_side=DEFAULT_STORED_SIZE,
                         table2={"lr": 1e-4, "batch_size": 256}, find=find_affectnet)


@register_dataset("affectnet7", AFFECTNET7)
def load_affectnet7(root: str | os.PathLike | None = None, image_size: int = DEFAULT_STORED_SIZE,
                    val_fraction: float = 0.0, seed: int = 0, cache: bool = True, images_dir: str | None = None) -> FaceData:
    """AffectNet-7: expressions 0-6 (contempt and 8-10 dropped); face crops stored at ``image_size`` px."""
    return _load("affectnet7", 7, root, image_size, val_fraction, seed, cache, images_dir)


@register_dataset("affectnet8", AFFECTNET8)
def load_affectnet8(root: str | os.PathLike | None = None, image_size: int = DEFAULT_STORED_SIZE,
                    val_fraction: float = 0.0, seed: int = 0, cache: bool = True, images_dir: str | None = None) -> FaceData:
    """AffectNet-8: expressions 0-7 (8-10 dropped); face crops stored at ``image_size`` px."""
    return _load("affectnet8", 8, root, image_size, val_fraction, seed, cache, images_dir)
