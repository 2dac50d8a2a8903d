"""The batched on-device Augment and the batch iterator."""

from __future__ import annotations

import pytest
import torch

from fer_lib.data import FaceData
from fer_lib.data.pipeline import Augment, Batches
from fer_lib.models import InputSpec, build_model

SPEC = InputSpec(size=32, channels=3)
OFF = dict(flip=0, affine_p=0, contrast_p=0, grayscale=0, noise_p=0, erasing=0)


def faces(n: int = 6, channels: int = 1, size: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def test_eval_transform_is_deterministic_and_normalised() -> None:
    x = faces()
    aug = Augment(SPEC, train=False)
    out = aug(x)
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out, aug(x))
    flat = Augment(SPEC, train=False)(torch.full((1, 1, 32, 32), 128, dtype=torch.uint8))
    want = (128 / 255 - torch.tensor(SPEC.mean)) / torch.tensor(SPEC.std)
    assert torch.allclose(flat[0, :, 5, 5], want, atol=1e-5)  # grey replicated to 3 channels, then normalised


def test_channel_handling() -> None:
    grey = Augment(InputSpec(32, 1, (0.5,), (0.5,)), train=False)
    assert grey(faces(channels=3)).shape == (6, 1, 32, 32)
    assert grey(faces(channels=1)).shape == (6, 1, 32, 32)
    assert Augment(SPEC)(faces(channels=3, size=64)).shape == (6, 3, 32, 32)  # larger source: shrunk first
    assert Augment(SPEC)(faces(channels=1, size=20)).shape == (6, 3, 32, 32)  # smaller source: enlarged


def test_all_off_equals_eval() -> None:
    x = faces(channels=3)
    assert torch.allclose(Augment(SPEC, train=True, **OFF)(x), Augment(SPEC, train=False)(x))


def test_seeded_runs_repeat() -> None:
    x = faces(16, channels=3)
    a = Augment(SPEC, generator=torch.Generator().manual_seed(3))(x)
    b = Augment(SPEC, generator=torch.Generator().manual_seed(3))(x)
    c = Augment(SPEC, generator=torch.Generator().manual_seed(4))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(7)
    d = Augment(SPEC)(x)
    torch.manual_seed(7)
    assert torch.equal(d, Augment(SPEC)(x))


def test_each_augmentation() -> None:
    x = faces(8, channels=3)
    base = Augment(SPEC, train=False)(x)
    flipped = Augment(SPEC, **{**OFF, "flip": 1.0})(x)
    assert torch.allclose(flipped, base.flip(-1), atol=1e-5)

    grey = Augment(SPEC, **{**OFF, "grayscale": 1.0})(x)
    raw = grey * torch.tensor(SPEC.std).view(1, 3, 1, 1) + torch.tensor(SPEC.mean).view(1, 3, 1, 1)
    assert torch.allclose(raw[:, 0], raw[:, 1], atol=1e-5) and torch.allclose(raw[:, 1], raw[:, 2], atol=1e-5)

    full = faces(8, channels=3, size=32)  # at the model size the noise is not resampled
    noisy = Augment(SPEC, **{**OFF, "noise_p": 1.0, "noise_std": 0.05})(full)
    spread = ((noisy - Augment(SPEC, train=False)(full)) * torch.tensor(SPEC.std).view(1, 3, 1, 1)).std()
    assert 0.03 < spread < 0.06

    low = Augment(SPEC, **{**OFF, "contrast_p": 1.0, "contrast": 0.9})(x)
    ratio = (low.std((1, 2, 3)) / base.std((1, 2, 3)))
    assert (ratio - 1).abs().max() > 0.2 and ratio.max() < 1.95

    erased = Augment(SPEC, **{**OFF, "erasing": 1.0})(x)
    zero = (erased == 0).all(1)
    area = zero.float().mean((1, 2))
    assert ((area > 0.015) & (area < 0.3)).all()
    assert torch.equal(erased[~zero.unsqueeze(1).expand_as(erased)], base[~zero.unsqueeze(1).expand_as(base)])

    turned = Augment(SPEC, **{**OFF, "affine_p": 1.0, "rotation": 45.0, "crop_padding": 0.0})(
        torch.full((4, 3, 32, 32), 200, dtype=torch.uint8))
    black = (0 - torch.tensor(SPEC.mean)) / torch.tensor(SPEC.std)
    corners = turned[:, :, 0, 0]
    assert (corners - black).abs().max(1).values.lt(0.5).sum() >= 3  # rotated corners fill with black
    shifted = Augment(SPEC, **{**OFF, "affine_p": 1.0, "rotation": 0.0, "crop_padding": 0.25})(x)
    assert not torch.allclose(shifted, base)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Augment(SPEC)(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="probability"):
        Augment(SPEC, flip=1.5)
    assert "deterministic" in repr(Augment(SPEC, train=False)) and "erasing=0.5" in repr(Augment(SPEC))


def _data(n: int = 10) -> FaceData:
    return FaceData("t", ("a", "b"), faces(n), torch.arange(n) % 2, torch.tensor([0] * 7 + [1, 2, 2], dtype=torch.int8))


def test_batches_cover_split_once() -> None:
    data = _data()
    batches = Batches(data, "train", 3, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([rows for _, _, rows in batches])
    assert len(batches) == 3 and sorted(seen.tolist()) == list(range(7))
    again = torch.cat([rows for _, _, rows in Batches(data, "train", 3, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(seen, again)
    assert len(Batches(data, "train", 3, drop_last=True)) == 2
    x, y, rows = next(iter(Batches(data, "test", 8, Augment(SPEC, train=False))))
    assert x.shape == (2, 3, 32, 32) and rows.tolist() == [8, 9] and y.tolist() == [0, 1]


def test_feeds_a_model() -> None:
    model = build_model("resnet18", num_classes=2).eval()
    spec = model.input_spec
    data = _data()
    x, y, _ = next(iter(Batches(data, "train", 4, Augment(InputSpec(48, spec.channels, spec.mean, spec.std)))))
    with torch.no_grad():
        assert model(x).logits.shape == (4, 2)
