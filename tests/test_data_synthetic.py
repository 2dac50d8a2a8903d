"""The built-in synthetic faces: deterministic, labelled, masked, quick, and not linearly separable."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fer_lib.data import load_dataset
from fer_lib.data.fer2013 import FER2013_CLASSES
from fer_lib.data.synthetic import _draw, pixel_linear_accuracy


def test_default_dataset_shape_labels_and_speed() -> None:
    start = time.perf_counter()
    data = load_dataset("synthetic")
    seconds = time.perf_counter() - start
    assert seconds < 30, f"generation took {seconds:.1f} s"
    assert data.synthetic and "SYNTHETIC" in data.source
    assert data.classes == FER2013_CLASSES
    assert data.images.shape == (2940, 3, 64, 64) and data.images.dtype == torch.uint8
    assert [len(data.indices(s)) for s in ("train", "val", "test")] == [2100, 420, 420]
    assert data.class_counts("test").tolist() == [60] * 7
    assert data.masks.shape == (2940, 64, 64)
    share = data.masks.float().mean((1, 2))
    assert share.min() > 0.01 and share.max() < 0.25  # brows, eyes and mouth: a small part of each image
    assert data.images.float().std() > 40  # not blank


def test_seeded_and_options() -> None:
    a = load_dataset("synthetic", per_class=(3, 1, 1), size=32, seed=5)
    b = load_dataset("synthetic", per_class=(3, 1, 1), size=32, seed=5)
    c = load_dataset("synthetic", per_class=(3, 1, 1), size=32, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
    eight = load_dataset("synthetic", num_classes=8, per_class=(2, 0, 1), size=32, channels=1)
    assert eight.classes[-1] == "contempt" and eight.images.shape == (24, 1, 32, 32)
    assert len(eight.indices("val")) == 0
    with pytest.raises(ValueError, match="7 .* or 8"):
        load_dataset("synthetic", num_classes=5)


def test_drawn_once_then_read_from_the_cache_with_the_same_faces_and_fingerprint(tmp_path, monkeypatch) -> None:
    """A report checks every record's data: the faces are drawn once, then read back, identical."""
    monkeypatch.setenv("FER_CACHE", str(tmp_path))
    options = dict(per_class=(4, 1, 2), size=32, seed=3)
    drawn = load_dataset("synthetic", **options)
    assert len(list(tmp_path.glob("synthetic-*.pt"))) == 1
    again = load_dataset("synthetic", **options)
    fresh = load_dataset("synthetic", cache=False, **options)
    for data in (again, fresh):
        assert data.fingerprint == drawn.fingerprint and data.synthetic and data.source == drawn.source
        assert all(torch.equal(getattr(data, k), getattr(drawn, k)) for k in ("images", "labels", "split", "masks"))
    assert load_dataset("synthetic", per_class=(4, 1, 2), size=32, seed=4).fingerprint != drawn.fingerprint
    assert len(list(tmp_path.glob("synthetic-*.pt"))) == 2


def test_expression_lives_inside_the_mask() -> None:
    """Same identity, pose, light and noise (same seed), another expression: every change is inside the masks."""
    n, size = 64, 64
    for c in range(1, 8):
        if c == 6:
            continue  # neutral against itself
        neutral, m0 = _draw(np.random.default_rng(1), np.full(n, 6), size, FER2013_CLASSES + ("contempt",))
        other, m1 = _draw(np.random.default_rng(1), np.full(n, c if c < 7 else 0), size, FER2013_CLASSES + ("contempt",))
        changed = np.abs(other - neutral).max(1) > 0.02
        assert changed.sum() > n * 5, f"class {c} barely differs from neutral"
        inside = changed & (m0.astype(bool) | m1.astype(bool))
        assert inside.sum() / changed.sum() > 0.99


@pytest.fixture
def one_thread():
    """Small convolutions run faster on one thread, and far faster on a busy machine (no thread spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cnn_beats_logistic_regression_on_pixels(one_thread) -> None:
    """A linear model on pixels does clearly worse than a small CNN (40 px grey, 1,400 training faces, 8 epochs)."""
    data = load_dataset("synthetic", per_class=(200, 0, 40), size=40, channels=1, seed=1)
    x = (data.images.float() / 255 - 0.5) / 0.25
    train, test = data.indices("train"), data.indices("test")
    y = data.labels
    linear_acc = pixel_linear_accuracy(data)

    torch.manual_seed(0)

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    cnn = nn.Sequential(*block(1, 8), *block(8, 16), *block(16, 32), *block(32, 32),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 7))
    epochs, batch = 8, 32
    opt = torch.optim.Adam(cnn.parameters(), 3e-3)
    steps = epochs * -(-len(train) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    for _ in range(epochs):
        cnn.train()
        for rows in train[torch.randperm(len(train))].split(batch):
            loss = F.cross_entropy(cnn(x[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    cnn.eval()
    with torch.no_grad():
        cnn_acc = (cnn(x[test]).argmax(1) == y[test]).float().mean().item()
    print(f"synthetic 40 px: logistic regression {linear_acc:.3f}, small CNN {cnn_acc:.3f} (chance 0.143)")
    assert cnn_acc > 0.45 and cnn_acc > linear_acc + 0.15


def test_pixel_linear_accuracy_needs_test_faces() -> None:
    data = load_dataset("synthetic", per_class=(5, 0, 0), size=16, seed=0)
    with pytest.raises(ValueError, match="test faces"):
        pixel_linear_accuracy(data)
