"""Writers of tiny datasets in each official format (FER2013 csv and Kaggle folder, FERPlus, RAF-DB, AffectNet, folders)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

FER_USAGE = ("Training", "PublicTest", "PrivateTest")


def face_pixels(seed: int, size: int = 48) -> np.ndarray:
    """A deterministic grey size x size uint8 image (its mean encodes the seed, so rows can be told apart)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 40, (size, size)) + (seed * 7) % 200).astype(np.uint8)


def fer2013_rows(per_split: Sequence[int] = (14, 7, 7)) -> list[tuple[int, str, str]]:
    """(emotion, pixels, Usage) rows: every class in every split, the row number as the face's seed."""
    rows = []
    for usage, count in zip(FER_USAGE, per_split):
        for i in range(count):
            seed = len(rows)
            rows.append((i % 7, " ".join(map(str, face_pixels(seed).ravel())), usage))
    return rows


def write_fer2013_csv(path: Path, rows: Sequence[tuple] | None = None, header: str = "emotion,pixels,Usage",
                      gz: bool = False) -> Path:
    """fer2013.csv (or .csv.gz): a header line and one ``emotion,"pixels",Usage`` line per row."""
    rows = fer2013_rows() if rows is None else rows
    text = header + "\n" + "".join(f'{e},"{p}",{u}\n' for e, p, u in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def write_ferplus_csv(path: Path, votes: Sequence[Sequence[int]], usages: Sequence[str],
                      names: Sequence[str] | None = None) -> Path:
    """fer2013new.csv: Usage, Image name, 10 vote counts per row."""
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    names = [f"fer{i:07d}.png" for i in range(len(votes))] if names is None else names
    lines = [f"{u},{n},{','.join(map(str, v))}\n" for u, n, v in zip(usages, names, votes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "".join(lines))
    return path


def write_image(path: Path, seed: int, size: int = 48, mode: str = "RGB") -> Path:
    """One small JPEG/PNG with deterministic content."""
    grey = face_pixels(seed, size)
    im = Image.fromarray(grey if mode == "L" else np.stack([grey, 255 - grey, grey // 2], -1))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


FER_FOLDER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def write_fer2013_folder(base: Path, per_class: int = 2) -> Path:
    """Kaggle copy: train/<class>/Training_<id>.jpg, test/<class>/PublicTest_<id>.jpg and PrivateTest_<id>.jpg."""
    n = 0
    for cls in FER_FOLDER_CLASSES:
        for i in range(per_class):
            for folder, prefix in (("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")):
                write_image(base / folder / cls / f"{prefix}_{1000 + n}.jpg", n, mode="L")
                n += 1
    return base


RAF_LABELS = (1, 2, 3, 4, 5, 6, 7)


def write_rafdb(base: Path, train_per_class: int = 2, test_per_class: int = 1, size: int = 100) -> Path:
    """RAF-DB basic: EmoLabel/list_patition_label.txt and Image/aligned/<stem>_aligned.jpg (100 x 100 RGB)."""
    lines, n = [], 0
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        k = 0
        for label in RAF_LABELS:
            for _ in range(count):
                k += 1
                name = f"{split}_{k:05d}.jpg"
                lines.append(f"{name} {label}")
                write_image(base / "Image" / "aligned" / f"{split}_{k:05d}_aligned.jpg", n, size)
                n += 1
    (base / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return base


AFFECTNET_HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def write_affectnet(base: Path, expressions: dict[str, Sequence[int]] | None = None, size: int = 80) -> Path:
    """AffectNet: training.csv / validation.csv and Manually_Annotated_Images/<dir>/<hash>.jpg with face boxes."""
    expressions = expressions or {"training.csv": list(range(11)) * 2, "validation.csv": list(range(11))}
    n = 0
    for csv_name, exprs in expressions.items():
        lines = [AFFECTNET_HEADER]
        for e in exprs:
            rel = f"{n % 3 + 1}/{n:040x}.jpg"
            write_image(base / "Manually_Annotated_Images" / rel, n, size)
            landmarks = ";".join(str(v) for v in range(10, 146))
            lines.append(f'{rel},10,12,{size - 20},{size - 24},"{landmarks}",{e},0.1,-0.2')
            n += 1
        (base / csv_name).write_text("\n".join(lines) + "\n")
    return base


def write_image_folder(base: Path, classes: Sequence[str] = ("cat", "dog"), splits: Sequence[str] = ("train", "test"),
                       per_class: int = 2, size: int = 40) -> Path:
    """<split>/<class>/<n>.png."""
    n = 0
    for split in splits:
        for cls in classes:
            for _ in range(per_class):
                write_image(base / split / cls / f"{n}.png", n, size)
                n += 1
    return base
