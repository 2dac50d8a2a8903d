"""FER2013 (Goodfellow et al. 2013): the challenge csv (``fer2013.csv`` or ``.csv.gz``) and the Kaggle image-folder copy.

Splits as the paper uses them: Training -> train, PublicTest -> val, PrivateTest -> test. Faces are
48 x 48 grey and are stored at that size (N x 1 x 48 x 48); ``Augment`` resizes them on the device.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from fer_lib.data import DatasetError, DatasetInfo, FaceData, data_root, register_dataset
from fer_lib.data.cache import cached, file_digest, listing_digest
from fer_lib.data.folder import scan_folder
from fer_lib.data.images import check_splits, decode_images

# emotion 0-6 of fer2013.csv, in that order
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_TO_SPLIT = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
SIDE = 48
NUM_PIXELS = SIDE * SIDE
CSV_NAMES = ("fer2013.csv.gz", "fer2013.csv")


def find_fer2013_csv(root: str | os.PathLike | None = None) -> Path:
    """The FER2013 csv under ``root`` (a file, or a folder holding it directly or in ``fer2013/``)."""
    base = data_root(root)
    if base.is_file():
        return base
    if not base.exists():
        raise DatasetError(f"{base}: data root does not exist; pass root=... or set $FER_DATA to the folder "
                           "that holds fer2013/fer2013.csv(.gz) (see docs/data.md)")
    candidates = [base / "fer2013" / n for n in CSV_NAMES] + [base / n for n in CSV_NAMES]
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetError(f"{base / 'fer2013' / 'fer2013.csv'}: FER2013 csv not found (also looked for .csv.gz and in "
                       f"{base}); download fer2013.csv and put it there, or pass root=... / set $FER_DATA")


def read_fer2013_csv(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parse and check a FER2013 csv: (N x 1 x 48 x 48 uint8 images, N int64 labels, N int8 split codes)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"pixels": str, "Usage": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as err:
        raise DatasetError(f"{path}: not a readable csv ({err}); re-download fer2013.csv") from None
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: columns {list(table.columns)} lack {missing}; the official header is "
                           f"{','.join(CSV_COLUMNS)} (use the original fer2013.csv, not the Kaggle train.csv/test.csv)")
    if len(table) == 0:
        raise DatasetError(f"{path}: no rows; re-download fer2013.csv")

    emotion = pd.to_numeric(table["emotion"], errors="coerce")
    bad = ~emotion.isin(range(len(FER2013_CLASSES)))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DatasetError(f"{path}: line {row + 2}: emotion {str(table['emotion'].iloc[row])!r} is not a label 0-6 "
                           f"({', '.join(FER2013_CLASSES)}); fix or drop that row")
    split = table["Usage"].map(USAGE_TO_SPLIT)
    if split.isna().any():
        row = int(np.argmax(split.isna().to_numpy()))
        raise DatasetError(f"{path}: line {row + 2}: Usage {table['Usage'].iloc[row]!r} is not one of "
                           f"{list(USAGE_TO_SPLIT)}; fix or drop that row")

    pixels = np.empty((len(table), NUM_PIXELS), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fromstring warns on text it cannot parse; we check the count
        for i, text in enumerate(tqdm(table["pixels"].tolist(), desc=f"decoding {path.name}", unit="face",
                                      leave=False, disable=len(table) < 5000)):
            try:
                values = np.fromstring(text, dtype=np.int64, sep=" ") if isinstance(text, str) else np.empty(0)
            except ValueError:  # text that is not all integers (newer numpy raises, older warns and stops)
                values = np.empty(0)
            if values.size != NUM_PIXELS or values.min() < 0 or values.max() > 255:
                what = f"{values.size} numbers" if values.size != NUM_PIXELS else "values outside 0-255"
                what = "text that is not integers" if values.size == 0 and isinstance(text, str) and text.strip() else what
                raise DatasetError(f"{path}: line {i + 2}: pixels has {what}, expected {NUM_PIXELS} space-separated "
                                   "integers 0-255 (a 48 x 48 face); the file is damaged: re-download it")
            pixels[i] = values
    return (
        torch.from_numpy(pixels).view(-1, 1, SIDE, SIDE),
        torch.tensor(emotion.to_numpy(dtype=np.int64)),
        torch.tensor(split.to_numpy(dtype=np.int8)),
    )


FER2013 = DatasetInfo(label="FER2013", classes=FER2013_CLASSES, stored_side=SIDE, grey=True,
                      table2={"lr": 1e-4, "batch_size": 256}, find=find_fer2013_csv)


@register_dataset("fer2013", FER2013)
def load_fer2013(root: str | os.PathLike | None = None, cache: bool = True) -> FaceData:
    """FER2013 from ``fer2013/fer2013.csv(.gz)`` under ``root``: 28,709 / 3,589 / 3,589 faces, 7 classes."""
    path = find_fer2013_csv(root)

    def build() -> FaceData:
        images, labels, split = read_fer2013_csv(path)
        check_splits(split, ("train", "val", "test"), str(path))
        return FaceData("fer2013", FER2013_CLASSES, images, labels, split, source=str(path))

    data = cached("fer2013", {"sources": {"csv": file_digest(path)}}, build, cache)
    data.source = str(path)
    return data


# Kaggle folder copy: class folder names and file-name prefixes.
FOLDER_CLASSES = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5, "neutral": 6}
PREFIX_TO_SPLIT = {"training": 0, "publictest": 1, "privatetest": 2}


def find_fer2013_folder(root: str | os.PathLike | None = None) -> Path:
    """The Kaggle copy's folder (holding ``train/`` and ``test/``) under ``root`` or ``root/fer2013_folder``."""
    base = data_root(root)
    for folder in (base / "fer2013_folder", base):
        if (folder / "train").is_dir():
            return folder
    raise DatasetError(f"{base / 'fer2013_folder'}: no train/ folder of the Kaggle FER2013 image copy "
                       "(train/<class>/Training_*.jpg, test/<class>/PublicTest_*.jpg and PrivateTest_*.jpg); "
                       "unpack it there, or pass root=... / set $FER_DATA")


FER2013_FOLDER = DatasetInfo(label="FER2013 (image folder)", classes=FER2013_CLASSES, stored_side=SIDE, grey=True,
                             table2_row="fer2013", find=find_fer2013_folder)


@register_dataset("fer2013_folder", FER2013_FOLDER)
def load_fer2013_folder(root: str | os.PathLike | None = None, cache: bool = True) -> FaceData:
    """FER2013 from the Kaggle image-folder copy; split by file-name prefix (Training / PublicTest / PrivateTest).

    Files without such a prefix take their folder's split (train/ -> train, test/ -> test).
    """
    base = find_fer2013_folder(root)
    found = scan_folder(base)
    paths, labels, split = [], [], []
    for split_name, classes in found.items():
        for class_name, files in classes.items():
            if class_name.lower() not in FOLDER_CLASSES:
                raise DatasetError(f"{base / split_name / class_name}: unknown FER2013 class folder; expected "
                                   f"{sorted(FOLDER_CLASSES)}")
            for f in files:
                prefix = f.name.split("_", 1)[0].lower()
                paths.append(f)
                labels.append(FOLDER_CLASSES[class_name.lower()])
                split.append(PREFIX_TO_SPLIT.get(prefix, ("train", "val", "test").index(split_name)))

    def build() -> FaceData:
        images = decode_images(paths, SIDE, channels=1, desc="decoding FER2013 folder")
        split_t = torch.tensor(split, dtype=torch.int8)
        check_splits(split_t, ("train", "test"), str(base))
        return FaceData("fer2013_folder", FER2013_CLASSES, images, torch.tensor(labels, dtype=torch.int64), split_t,
                        source=str(base))

    return cached("fer2013_folder", {"sources": {"images": listing_digest(paths, base)}}, build, cache)
