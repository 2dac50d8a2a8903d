"""The real FER2013 and FERPlus files (under $FER_DATA or ../shared/data): published and measured counts.

The FER2013 decode is cached in the project's ignored cache, so only the first run pays for it.
"""

from __future__ import annotations

import time

import pytest
import torch

from fer_lib.data import data_root, load_dataset

pytestmark = pytest.mark.realdata

FER_DIR = data_root() / "fer2013"
PLUS_CSV = data_root() / "ferplus" / "fer2013new.csv"


def _need(path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not found: real data lives under $FER_DATA or ../shared/data (see docs/data.md)")


@pytest.fixture(scope="module")
def fer2013():
    _need(FER_DIR)
    return load_dataset("fer2013")


@pytest.fixture(scope="module")
def ferplus(fer2013):
    _need(PLUS_CSV)
    return load_dataset("ferplus")


def test_fer2013_published_counts(fer2013) -> None:
    assert fer2013.images.shape == (35887, 1, 48, 48) and fer2013.images.dtype == torch.uint8
    assert [len(fer2013.indices(s)) for s in ("train", "val", "test")] == [28709, 3589, 3589]
    # angry, disgust, fear, happy, sad, surprise, neutral
    assert fer2013.class_counts("train").tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert fer2013.class_counts("val").tolist() == [467, 56, 496, 895, 653, 415, 607]
    assert fer2013.class_counts("test").tolist() == [491, 55, 528, 879, 594, 416, 626]
    assert fer2013.split[:28709].eq(0).all()  # Training rows come first, as in the file


def test_fer2013_loads_from_cache_in_seconds(fer2013) -> None:
    start = time.perf_counter()
    again = load_dataset("fer2013")
    assert time.perf_counter() - start < 10
    assert torch.equal(again.labels, fer2013.labels) and torch.equal(again.images[::997], fer2013.images[::997])


def test_ferplus_majority_vote_split_sizes(ferplus) -> None:
    # Measured on fer2013new.csv with Microsoft's majority rule (docs/data.md); the paper's 28,709 / 3,589
    # are FER2013's split sizes before any row is dropped.
    assert [len(ferplus.indices(s)) for s in ("train", "val", "test")] == [25060, 3199, 3153]
    # neutral, happiness, surprise, sadness, anger, disgust, fear, contempt
    assert ferplus.class_counts("train").tolist() == [8740, 7287, 3149, 3014, 2100, 119, 532, 119]
    assert ferplus.soft_labels.shape == (31412, 8)
    assert torch.allclose(ferplus.soft_labels.sum(1), torch.ones(31412))
    assert torch.equal(ferplus.soft_labels.argmax(1), ferplus.labels)  # a majority is the top of the raw votes too
