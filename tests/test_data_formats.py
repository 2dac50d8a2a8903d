"""Loaders on tiny files written in each official format, and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_fixtures import (
    face_pixels,
    fer2013_rows,
    write_affectnet,
    write_fer2013_csv,
    write_fer2013_folder,
    write_ferplus_csv,
    write_image,
    write_image_folder,
    write_rafdb,
)
from fer_lib.data import DATASETS, DatasetError, FaceData, available_datasets, load_dataset
from fer_lib.data.cache import cache_path
from fer_lib.data.ferplus import majority_labels


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_CACHE", str(cache))
    return cache


def test_registry_names() -> None:
    assert set(available_datasets()) == {"fer2013", "fer2013_folder", "ferplus", "rafdb", "affectnet7", "affectnet8",
                                         "folder", "synthetic"}
    assert set(DATASETS) >= set(available_datasets())
    with pytest.raises(KeyError, match="unknown dataset"):
        load_dataset("ckplus")


# ---- FER2013 csv -------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_fer2013_csv(tmp_path: Path, gz: bool) -> None:
    rows = fer2013_rows((14, 7, 7))
    write_fer2013_csv(tmp_path / "fer2013" / ("fer2013.csv.gz" if gz else "fer2013.csv"), rows, gz=gz)
    data = load_dataset("fer2013", root=tmp_path)
    assert isinstance(data, FaceData) and data.classes[0] == "angry" and data.classes[6] == "neutral"
    assert data.images.shape == (28, 1, 48, 48) and data.images.dtype == torch.uint8
    assert [len(data.indices(s)) for s in ("train", "val", "test")] == [14, 7, 7]
    assert data.labels.tolist() == [e for e, _, _ in rows]
    assert torch.equal(data.images[9, 0], torch.from_numpy(face_pixels(9)))
    assert data.class_counts("train").tolist() == [2] * 7
    assert not data.synthetic and data.soft_labels is None


def test_fer2013_cache_is_keyed_by_checksum(tmp_path: Path, _own_cache: Path) -> None:
    path = write_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv")
    first = load_dataset("fer2013", root=tmp_path)
    files = sorted(_own_cache.glob("fer2013-*.pt"))
    assert len(files) == 1
    again = load_dataset("fer2013", root=tmp_path)
    assert torch.equal(first.images, again.images) and torch.equal(first.split, again.split)
    rows = fer2013_rows()
    rows[0] = (5,) + rows[0][1:]
    write_fer2013_csv(path, rows)  # new content -> new checksum -> a new cache file, never the stale one
    changed = load_dataset("fer2013", root=tmp_path)
    assert changed.labels[0] == 5 and len(list(_own_cache.glob("fer2013-*.pt"))) == 2
    assert load_dataset("fer2013", root=tmp_path, cache=False).labels[0] == 5


def test_fer2013_accepts_file_or_flat_root(tmp_path: Path) -> None:
    path = write_fer2013_csv(tmp_path / "fer2013.csv")
    assert len(load_dataset("fer2013", root=tmp_path).labels) == 28
    assert len(load_dataset("fer2013", root=path).labels) == 28


def _fer_error(tmp_path: Path, rows=None, header: str = "emotion,pixels,Usage", match: str = "") -> None:
    write_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv", rows, header=header)
    with pytest.raises(DatasetError, match=match) as err:
        load_dataset("fer2013", root=tmp_path)
    assert "fer2013.csv" in str(err.value)


def test_fer2013_missing_root_and_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist.*FER_DATA"):
        load_dataset("fer2013", root=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="fer2013.csv.*not found"):
        load_dataset("fer2013", root=tmp_path)


def test_fer2013_wrong_columns(tmp_path: Path) -> None:
    _fer_error(tmp_path, header="label,pixels,Usage", match="lack \\['emotion'\\]")


def test_fer2013_pixels_not_2304_numbers(tmp_path: Path) -> None:
    rows = fer2013_rows()
    rows[3] = (rows[3][0], rows[3][1].rsplit(" ", 1)[0], rows[3][2])
    _fer_error(tmp_path, rows, match="line 5: pixels has 2303 numbers")
    rows[3] = (rows[3][0], rows[3][1] + " x", rows[3][2])
    _fer_error(tmp_path, rows, match="line 5: pixels has text that is not integers")
    rows[3] = (rows[3][0], "256 " + fer2013_rows()[3][1].split(" ", 1)[1], rows[3][2])
    _fer_error(tmp_path, rows, match="line 5: pixels has values outside 0-255")


def test_fer2013_labels_out_of_range(tmp_path: Path) -> None:
    rows = fer2013_rows()
    rows[2] = (7,) + rows[2][1:]
    _fer_error(tmp_path, rows, match="line 4: emotion '7' is not a label 0-6")


def test_fer2013_bad_usage_and_empty_split(tmp_path: Path) -> None:
    rows = fer2013_rows()
    rows[1] = rows[1][:2] + ("Validation",)
    _fer_error(tmp_path, rows, match="line 3: Usage 'Validation'")
    _fer_error(tmp_path, fer2013_rows((14, 0, 7)), match="'val' split has no samples")


def test_fer2013_truncated_gzip(tmp_path: Path) -> None:
    path = write_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv.gz", gz=True)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DatasetError, match="fer2013.csv.gz"):
        load_dataset("fer2013", root=tmp_path)


# ---- FER2013 Kaggle folder ---------------------------------------------------------------------

def test_fer2013_folder(tmp_path: Path) -> None:
    write_fer2013_folder(tmp_path / "fer2013_folder", per_class=2)
    data = load_dataset("fer2013_folder", root=tmp_path)
    assert data.images.shape == (42, 1, 48, 48)
    assert [len(data.indices(s)) for s in ("train", "val", "test")] == [14, 14, 14]
    assert data.classes == load_dataset("fer2013", root=write_fer2013_csv(tmp_path / "f.csv")).classes
    assert data.class_counts("test").tolist() == [2] * 7
    happy = data.classes.index("happy")
    assert (data.labels[data.indices("train")] == happy).sum() == 2


def test_fer2013_folder_errors(tmp_path: Path) -> None:
    base = write_fer2013_folder(tmp_path / "fer2013_folder", per_class=1)
    (base / "train" / "contempt").mkdir()
    write_image(base / "train" / "contempt" / "Training_1.jpg", 1, mode="L")
    with pytest.raises(DatasetError, match="contempt: unknown FER2013 class folder"):
        load_dataset("fer2013_folder", root=tmp_path)
    (base / "train" / "contempt" / "Training_1.jpg").unlink()
    with pytest.raises(DatasetError, match="contempt: empty class folder"):
        load_dataset("fer2013_folder", root=tmp_path)
    (base / "train" / "contempt").rmdir()
    (base / "train" / "happy" / "Training_1009.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match="Training_1009.jpg: unreadable or truncated image"):
        load_dataset("fer2013_folder", root=tmp_path)
    with pytest.raises(DatasetError, match="no train/ folder"):
        load_dataset("fer2013_folder", root=tmp_path / "empty")


# ---- FERPlus -----------------------------------------------------------------------------------

def test_ferplus_majority_rule() -> None:
    votes = np.array([
        [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],   # 4 of 9 after dropping the single vote: no majority -> dropped
        [6, 0, 1, 1, 0, 0, 0, 0, 2, 0],   # 6 of 8 -> neutral
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face -> dropped
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],   # every vote single -> nothing left -> dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],   # unknown wins -> dropped
        [0, 0, 0, 0, 0, 0, 0, 5, 0, 1],   # contempt 5 of 5 (the single NF vote is dropped)
        [0, 3, 0, 0, 0, 0, 0, 0, 0, 3],   # 3 of 6: not more than half -> dropped
        [0, 2, 5, 0, 0, 0, 0, 0, 0, 0],   # surprise
    ])
    assert majority_labels(votes).tolist() == [-1, 0, -1, -1, -1, 7, -1, 2]


def test_ferplus(tmp_path: Path) -> None:
    rows = fer2013_rows((4, 2, 2))
    write_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv", rows)
    votes = [[0, 8, 0, 0, 0, 0, 0, 0, 2, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], [2, 0, 7, 0, 1, 0, 0, 0, 0, 0],
             [3, 3, 3, 0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 6, 4, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 0, 9, 1, 0], [0, 0, 0, 2, 8, 0, 0, 0, 0, 0]]
    usages = [u for _, _, u in rows]
    names = [f"fer{i:07d}.png" for i in range(8)]
    names[5] = ""  # no image name: Microsoft's script writes no image, so the row is dropped
    write_ferplus_csv(tmp_path / "ferplus" / "fer2013new.csv", votes, usages, names)
    data = load_dataset("ferplus", root=tmp_path)
    assert data.classes == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert data.labels.tolist() == [1, 2, 6, 7, 4]
    assert data.split.tolist() == [0, 0, 1, 2, 2]
    assert torch.equal(data.images[2, 0], torch.from_numpy(face_pixels(4)))  # same pixels as fer2013 row 4
    assert data.soft_labels.shape == (5, 8)
    assert torch.allclose(data.soft_labels.sum(1), torch.ones(5))
    assert torch.allclose(data.soft_labels[1], torch.tensor([2, 0, 7, 0, 1, 0, 0, 0]) / 10)


def test_ferplus_errors(tmp_path: Path) -> None:
    rows = fer2013_rows((4, 2, 2))
    write_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv", rows)
    usages = [u for _, _, u in rows]
    path = tmp_path / "ferplus" / "fer2013new.csv"
    with pytest.raises(DatasetError, match="fer2013new.csv.*not found"):
        load_dataset("ferplus", root=tmp_path)
    good = [[0, 9, 0, 0, 0, 0, 0, 0, 1, 0]] * 8
    write_ferplus_csv(path, good[:7], usages[:7])
    with pytest.raises(DatasetError, match="7 rows, but the FER2013 csv has 8"):
        load_dataset("ferplus", root=tmp_path)
    write_ferplus_csv(path, good, ["PublicTest"] + usages[1:])
    with pytest.raises(DatasetError, match="line 2: Usage differs"):
        load_dataset("ferplus", root=tmp_path)
    write_ferplus_csv(path, good[:3] + [[0, -1, 0, 0, 0, 0, 0, 0, 0, 0]] + good[4:], usages)
    with pytest.raises(DatasetError, match="line 5: votes"):
        load_dataset("ferplus", root=tmp_path)
    path.write_text(path.read_text().replace("NF", "notaface"))
    with pytest.raises(DatasetError, match="lack \\['NF'\\]"):
        load_dataset("ferplus", root=tmp_path)
    write_ferplus_csv(path, good[:6] + [[0, 0, 0, 0, 0, 0, 0, 0, 0, 10]] * 2, usages)
    with pytest.raises(DatasetError, match="'test' split has no samples"):
        load_dataset("ferplus", root=tmp_path)


# ---- RAF-DB ------------------------------------------------------------------------------------

def test_rafdb(tmp_path: Path) -> None:
    write_rafdb(tmp_path / "rafdb", train_per_class=2, test_per_class=1)
    data = load_dataset("rafdb", root=tmp_path, image_size=64)
    assert data.classes == ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    assert data.images.shape == (21, 3, 64, 64)
    assert [len(data.indices(s)) for s in ("train", "val", "test")] == [14, 0, 7]
    assert data.labels[:2].tolist() == [0, 0] and data.labels[-1] == 6
    carved = load_dataset("rafdb", root=tmp_path, image_size=64, val_fraction=0.5)
    assert [len(carved.indices(s)) for s in ("train", "val", "test")] == [7, 7, 7]
    assert carved.class_counts("val").tolist() == [1] * 7


def test_rafdb_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="list_patition_label.txt: RAF-DB label file not found"):
        load_dataset("rafdb", root=tmp_path)
    base = write_rafdb(tmp_path / "rafdb", 1, 1)
    labels = base / "EmoLabel" / "list_patition_label.txt"
    text = labels.read_text()
    labels.write_text(text.replace("train_00002.jpg 2", "train_00002.jpg 8"))
    with pytest.raises(DatasetError, match="line 2: label 8 is outside 1-7"):
        load_dataset("rafdb", root=tmp_path)
    labels.write_text(text.replace("train_00002.jpg 2", "train_00002.jpg"))
    with pytest.raises(DatasetError, match="line 2: 'train_00002.jpg' is not"):
        load_dataset("rafdb", root=tmp_path)
    labels.write_text(text)
    image = base / "Image" / "aligned" / "test_00003_aligned.jpg"
    image.write_bytes(image.read_bytes()[:300])
    with pytest.raises(DatasetError, match="test_00003_aligned.jpg: unreadable or truncated"):
        load_dataset("rafdb", root=tmp_path)
    image.unlink()
    with pytest.raises(DatasetError, match="test_00003_aligned.jpg: aligned image .* is missing"):
        load_dataset("rafdb", root=tmp_path)
    labels.write_text("".join(line + "\n" for line in text.splitlines() if line.startswith("train")))
    with pytest.raises(DatasetError, match="'test' split has no samples"):
        load_dataset("rafdb", root=tmp_path)


# ---- AffectNet ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,num_classes", [("affectnet7", 7), ("affectnet8", 8)])
def test_affectnet(tmp_path: Path, name: str, num_classes: int) -> None:
    write_affectnet(tmp_path / "affectnet")
    data = load_dataset(name, root=tmp_path, image_size=32)
    assert data.num_classes == num_classes and data.classes[-1] == ("contempt" if num_classes == 8 else "anger")
    assert [len(data.indices(s)) for s in ("train", "val", "test")] == [2 * num_classes, 0, num_classes]
    assert data.labels.max() == num_classes - 1 and data.images.shape[1:] == (3, 32, 32)


def test_affectnet_crops_the_face_box(tmp_path: Path) -> None:
    base = write_affectnet(tmp_path / "affectnet", {"training.csv": [1], "validation.csv": [2]}, size=80)
    crop = load_dataset("affectnet8", root=tmp_path, image_size=56).images[0]
    from PIL import Image

    with Image.open(base / "Manually_Annotated_Images" / "1" / f"{0:040x}.jpg") as im:
        want = np.asarray(im.convert("RGB").crop((10, 12, 70, 68)).resize((56, 56), Image.BILINEAR))
    assert torch.equal(crop, torch.tensor(want).permute(2, 0, 1))


def test_affectnet_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="training.csv: AffectNet training.csv not found"):
        load_dataset("affectnet7", root=tmp_path)
    base = write_affectnet(tmp_path / "affectnet", {"training.csv": [0, 1, 7], "validation.csv": [2, 3]})
    train = base / "training.csv"
    text = train.read_text()
    train.write_text(text.replace(",1,0.1,-0.2", ",11,0.1,-0.2"))
    with pytest.raises(DatasetError, match="training.csv: line 3: .* expression 0-10"):
        load_dataset("affectnet7", root=tmp_path)
    train.write_text(text.replace("face_width", "width"))
    with pytest.raises(DatasetError, match="lack \\['face_width'\\]"):
        load_dataset("affectnet7", root=tmp_path)
    train.write_text(text)
    (base / "validation.csv").write_text(text.splitlines()[0] + "\n")
    with pytest.raises(DatasetError, match="'test' split has no samples"):
        load_dataset("affectnet8", root=tmp_path)
    write_affectnet(base, {"training.csv": [0, 1], "validation.csv": [7]})
    with pytest.raises(DatasetError, match="'test' split has no samples"):
        load_dataset("affectnet7", root=tmp_path)  # contempt is not one of AffectNet-7's classes
    first = next(iter(sorted((base / "Manually_Annotated_Images").rglob("*.jpg"))))
    first.write_bytes(b"")
    with pytest.raises(DatasetError, match="unreadable or truncated"):
        load_dataset("affectnet8", root=tmp_path)


# ---- any split/class folder --------------------------------------------------------------------

def test_folder(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets", ("dog", "cat"), ("train", "val", "test"), per_class=2)
    data = load_dataset("folder", root=tmp_path / "pets", image_size=24)
    assert data.classes == ("cat", "dog") and data.images.shape == (12, 3, 24, 24)
    assert [len(data.indices(s)) for s in ("train", "val", "test")] == [4, 4, 4]
    grey = load_dataset("folder", root=tmp_path / "pets", image_size=24, channels=1, classes=("dog", "cat"))
    assert grey.images.shape == (12, 1, 24, 24) and grey.labels[:2].tolist() == [1, 1]


def test_folder_errors(tmp_path: Path) -> None:
    base = write_image_folder(tmp_path / "pets", per_class=1)
    with pytest.raises(DatasetError, match="dog: class folder not in classes"):
        load_dataset("folder", root=base, classes=("cat",))
    (base / "train" / "bird").mkdir()
    with pytest.raises(DatasetError, match="bird: empty class folder"):
        load_dataset("folder", root=base)
    (base / "train" / "bird").rmdir()
    for f in (base / "test").rglob("*.png"):
        f.unlink()
    with pytest.raises(DatasetError, match="empty class folder"):
        load_dataset("folder", root=base)
    for d in (base / "test").iterdir():
        d.rmdir()
    with pytest.raises(DatasetError, match="test: the 'test' split has no class folders"):
        load_dataset("folder", root=base)
    (base / "test").rmdir()
    with pytest.raises(DatasetError, match="'test' split has no samples"):
        load_dataset("folder", root=base)
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset("folder", root=tmp_path / "nothing")


def test_cache_path_depends_on_key(tmp_path: Path) -> None:
    a = cache_path("x", {"sources": {"csv": "1"}})
    assert a == cache_path("x", {"sources": {"csv": "1"}}) and a != cache_path("x", {"sources": {"csv": "2"}})
    assert a.parent == tmp_path / "cache"
