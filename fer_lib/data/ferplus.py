"""FERPlus (Barsoum et al. 2016): ``fer2013new.csv`` votes on top of the FER2013 pixels, same rows.

Labels follow the ``majority`` mode of Microsoft's reference code (github microsoft/FERPlus,
``src/ferplus.py``): votes of 1 are dropped as outliers, the top class is kept if it holds more than
half of the remaining votes, and rows whose winner is unknown or not-a-face, or that have no
majority, are dropped. Splits: Training / PublicTest / PrivateTest -> train / val / test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fer_lib.data import SPLITS, DatasetError, DatasetInfo, FaceData, data_root, register_dataset
from fer_lib.data.cache import file_digest, fingerprint
from fer_lib.data.fer2013 import SIDE, USAGE_TO_SPLIT, find_fer2013_csv, load_fer2013
from fer_lib.data.images import check_splits, require_file

# the vote columns of fer2013new.csv, in file order; the first 8 are the classes
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_COLUMNS = FERPLUS_CLASSES + ("unknown", "NF")
CSV_COLUMNS = ("Usage", "Image name") + VOTE_COLUMNS
IMAGE_NAME = r"^fer(\d+)\.png$"  # Microsoft's script numbers the faces in file order


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Microsoft's majority rule on N x 10 vote counts: the class index 0-7, or -1 where the row is dropped."""
    v = np.where(votes <= 1, 0, votes).astype(np.float64)  # single votes are outliers (ferplus.py _process_data)
    top = v.max(1)
    label = v.argmax(1)
    keep = (top > 0.5 * v.sum(1)) & (label < len(FERPLUS_CLASSES))  # winner unknown/NF, or no majority: dropped
    return np.where(keep, label, -1)


def find_ferplus_csv(root: str | os.PathLike | None = None) -> Path:
    """``fer2013new.csv`` under ``root`` (directly or in ``ferplus/``)."""
    base = data_root(root)
    for path in (base / "ferplus" / "fer2013new.csv", base / "fer2013new.csv"):
        if path.is_file():
            return path
    return require_file(base / "ferplus" / "fer2013new.csv", "FERPlus label file fer2013new.csv (github microsoft/FERPlus)")


def read_votes(path: Path, num_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check ``fer2013new.csv``: (N x 10 int votes, N split codes, N bool 'has an image name')."""
    try:
        table = pd.read_csv(path, dtype={"Usage": str, "Image name": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise DatasetError(f"{path}: not a readable csv ({err}); re-download fer2013new.csv") from None
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: columns {list(table.columns)} lack {missing}; the official header is {','.join(CSV_COLUMNS)}")
    if len(table) != num_rows:
        raise DatasetError(f"{path}: {len(table)} rows, but the FER2013 csv has {num_rows}; FERPlus needs the original "
                           "fer2013.csv with all 35,887 rows in their order")
    votes = table[list(VOTE_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = (votes.isna() | (votes < 0) | (votes % 1 != 0)).any(axis=1).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DatasetError(f"{path}: line {row + 2}: votes {table.loc[row, list(VOTE_COLUMNS)].tolist()} are not "
                           "non-negative integers; fix or re-download the file")
    split = table["Usage"].map(USAGE_TO_SPLIT)
    if split.isna().any():
        row = int(np.argmax(split.isna().to_numpy()))
        raise DatasetError(f"{path}: line {row + 2}: Usage {table['Usage'].iloc[row]!r} is not one of {list(USAGE_TO_SPLIT)}")
    names = table["Image name"].fillna("").str.strip()
    check_name_order(path, names)
    return votes.to_numpy(dtype=np.int64), split.to_numpy(dtype=np.int8), names.str.len().to_numpy() > 0


def check_name_order(path: Path, names: pd.Series) -> None:
    """Raise DatasetError at the first row out of the file's order, as its "Image name" tells.

    Microsoft's script names the faces it writes ``fer0000000.png``, ``fer0000001.png``, ... in
    fer2013.csv's order, so the numbers of the named rows rise. Rows without a name, and rows sharing
    a name with another row (4 in the real file: the later face overwrote the image), are skipped.
    """
    number = pd.to_numeric(names.str.extract(IMAGE_NAME, expand=False), errors="coerce")
    odd = (names != "") & number.isna()
    if odd.any():
        row = int(np.argmax(odd.to_numpy()))
        raise DatasetError(f"{path}: line {row + 2}: Image name {names.iloc[row]!r} is not fer<7 digits>.png; fix that line")
    rows = np.nonzero((number.notna() & ~number.duplicated(keep=False)).to_numpy())[0]
    falls = np.nonzero(np.diff(number.to_numpy()[rows]) <= 0)[0]
    if len(falls):
        before, row = rows[falls[0]], rows[falls[0] + 1]
        raise DatasetError(f"{path}: line {row + 2}: Image name {names.iloc[row]} comes after {names.iloc[before]} "
                           f"(line {before + 2}), so the rows are not in fer2013.csv's order (sorted or shuffled?); "
                           "restore the original order or re-download fer2013new.csv")


def check_kept(path: Path, split: np.ndarray, votes: np.ndarray, label: np.ndarray, named: np.ndarray) -> None:
    """Raise DatasetError, saying why, if every row of a split the csv lists is dropped."""
    kept = (label >= 0) & named
    for code, name in enumerate(SPLITS):
        rows = split == code
        if rows.any() and not kept[rows].any():
            empty = rows & (votes.sum(1) == 0)
            by_vote = rows & (label < 0) & ~empty
            raise DatasetError(
                f"{path}: the {name!r} split has no samples left: all its {int(rows.sum())} rows are dropped "
                f"({int(empty.sum())} with no votes at all, {int(by_vote.sum())} won by unknown/NF or without a majority, "
                f"{int((rows & (label >= 0) & ~named).sum())} without an Image name); check the vote columns"
            )


def find_ferplus(root: str | os.PathLike | None = None) -> Path:
    """``fer2013new.csv``, once the FER2013 csv whose pixels it labels is there too."""
    path = find_ferplus_csv(root)
    find_fer2013_csv(root)
    return path


FERPLUS = DatasetInfo(label="FERPlus", classes=FERPLUS_CLASSES, stored_side=SIDE, grey=True,
                      table2={"lr": 1e-4, "batch_size": 64}, find=find_ferplus)


@register_dataset("ferplus", FERPLUS)
def load_ferplus(root: str | os.PathLike | None = None, cache: bool = True) -> FaceData:
    """FERPlus: 8 classes, majority-vote labels, the rows' vote distributions over the 8 classes as ``soft_labels``.

    Rows without an "Image name" (Microsoft's script writes no image for them) are dropped too.
    """
    votes_path = find_ferplus_csv(root)
    fer = load_fer2013(root, cache=cache)
    votes, split, named = read_votes(votes_path, len(fer.labels))
    if not np.array_equal(split, fer.split.numpy()):
        row = int(np.argmax(split != fer.split.numpy()))
        raise DatasetError(f"{votes_path}: line {row + 2}: Usage differs from {fer.source}; the two files must list the "
                           "same faces in the same order")
    label = majority_labels(votes)
    check_kept(votes_path, split, votes, label, named)
    keep = np.nonzero((label >= 0) & named)[0]
    emotion_votes = votes[keep, : len(FERPLUS_CLASSES)].astype(np.float32)
    # Soft labels: the raw vote distribution over the 8 classes (every kept row has votes there).
    soft = emotion_votes / emotion_votes.sum(1, keepdims=True)
    keep_t = torch.from_numpy(keep)
    split_t = fer.split[keep_t]
    check_splits(split_t, ("train", "val", "test"), str(votes_path))
    return FaceData(
        "ferplus",
        FERPLUS_CLASSES,
        fer.images[keep_t],
        torch.from_numpy(label[keep]).long(),
        split_t,
        soft_labels=torch.from_numpy(soft),
        source=f"{votes_path} + {fer.source}",
        fingerprint=fingerprint("ferplus", {"sources": {"votes": file_digest(votes_path), "fer2013": fer.fingerprint}}),
    )
