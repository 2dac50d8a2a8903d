"""The on-device data pipeline: batches of a dataset held whole in memory, augmented in batches.

:class:`Augment` maps uint8 ``B x C x H x W`` (grey or colour, any stored size) to the float input a
model's :class:`~fer_lib.models.InputSpec` asks for: resized to ``spec.size``, replicated to 3
channels (or made grey), normalised. In training it applies the paper's augmentations (Sections
3.2-3.3): contrast change, grayscale, Gaussian noise, horizontal flip, random rotation (with DAN's
random crop) and random erasing. Each draws its own parameters per image: torchvision's v2
transforms, given a batch, use one draw for the whole batch, so the per-image draws are vectorised
tensor code around v2's functional ops (resize, grayscale). For speed the per-pixel
steps that commute with resizing (contrast, grayscale, flip) run at the smaller of the stored and the
model size; Gaussian noise does not commute (upsampling would shrink its std and correlate
neighbouring pixels), so it is added at the model's size, independently per pixel. Randomness comes from torch's global RNG, or from
``generator``, so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn

from fer_lib.data import FaceData
from fer_lib.models import InputSpec


class Augment(nn.Module):
    """Batched transform for training (``train=True``, random) or evaluation (deterministic).

    Defaults follow DAN's training transform (github yaoing/DAN), the paper's named base: flip 0.5;
    with probability ``affine_p`` 0.2 a rotation of up to 20 degrees and a random crop with 32 px
    padding at 224 px (``crop_padding`` is that fraction of the size); random erasing with p 0.5 and
    area 2-25 %. The paper adds grayscale, contrast and Gaussian noise without values; ours:
    grayscale p 0.2, contrast factor in [0.7, 1.3] with p 0.5, noise sigma 0.03 (on [0, 1]) with p 0.5.
    Any probability or strength set to 0 switches that step off.
    """

    def __init__(
        self,
        spec: InputSpec,
        train: bool = True,
        *,
        flip: float = 0.5,
        rotation: float = 20.0,
        crop_padding: float = 32 / 224,
        affine_p: float = 0.2,
        contrast: float = 0.3,
        contrast_p: float = 0.5,
        grayscale: float = 0.2,
        noise_std: float = 0.03,
        noise_p: float = 0.5,
        erasing: float = 0.5,
        erasing_scale: tuple[float, float] = (0.02, 0.25),
        erasing_ratio: tuple[float, float] = (0.3, 3.3),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if spec.channels not in (1, 3):
            raise ValueError(f"spec.channels must be 1 or 3, not {spec.channels}")
        self.spec, self.train_mode, self.generator = spec, train, generator
        self.params = dict(flip=flip, rotation=rotation, crop_padding=crop_padding, affine_p=affine_p,
                           contrast=contrast, contrast_p=contrast_p, grayscale=grayscale, noise_std=noise_std,
                           noise_p=noise_p, erasing=erasing, erasing_scale=tuple(erasing_scale),
                           erasing_ratio=tuple(erasing_ratio))
        for key in ("flip", "affine_p", "contrast_p", "grayscale", "noise_p", "erasing"):
            if not 0 <= self.params[key] <= 1:
                raise ValueError(f"{key} is a probability in [0, 1], not {self.params[key]}")

    def extra_repr(self) -> str:
        steps = ", ".join(f"{k}={v}" for k, v in self.params.items()) if self.train_mode else "deterministic"
        return f"size={self.spec.size}, channels={self.spec.channels}, train={self.train_mode}, {steps}"

    # randomness: the given generator (on its own device), else torch's global RNG on the data's device
    def _rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        g = self.generator
        return torch.rand(shape, device=device) if g is None else torch.rand(shape, generator=g, device=g.device).to(device)

    def _randn(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        g = self.generator
        return torch.randn(shape, device=device) if g is None else torch.randn(shape, generator=g, device=g.device).to(device)

    def _chance(self, p: float, n: int, device: torch.device) -> torch.Tensor:
        return self._rand(n, device=device) < p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(f"Augment expects uint8 B x C x H x W images, got {images.dtype} {tuple(images.shape)}")
        size = self.spec.size
        x = images.float().div_(255)
        if x.shape[1] == 3 and self.spec.channels == 1:
            x = TF.rgb_to_grayscale(x)
        if self.train_mode:
            # Per-pixel steps run at the smaller of the stored and the model size (they commute with resizing).
            if max(x.shape[-2:]) > size:
                x = TF.resize(x, [size, size], antialias=True)
            x = self._flip(self._colour(x))
        if x.shape[-2:] != (size, size):  # antialiasing matters (and costs) only when shrinking
            x = TF.resize(x, [size, size], antialias=max(x.shape[-2:]) > size)
        if self.train_mode:
            x = self._rotate_shift(self._noise(x))
        # (x - mean) / std in one pass; a grey plane broadcasts to 3 channels (grey source for a colour model)
        scale = torch.tensor([1 / s for s in self.spec.std], device=x.device).view(1, -1, 1, 1)
        offset = torch.tensor([-m / s for m, s in zip(self.spec.mean, self.spec.std)], device=x.device).view(1, -1, 1, 1)
        if x.shape[1] != self.spec.channels and x.shape[1] != 1:
            raise ValueError(f"cannot map {x.shape[1]} channels to {self.spec.channels}")
        x = torch.addcmul(offset, x, scale)
        if self.train_mode and self.params["erasing"] > 0:
            x = self._erase(x)
        return x

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        """Contrast and grayscale, each drawn per image (``x`` is a fresh tensor: changed in place)."""
        p, n, dev = self.params, x.shape[0], x.device
        if p["contrast"] > 0 and p["contrast_p"] > 0:
            factor = (1 + p["contrast"] * (2 * self._rand(n, device=dev) - 1)).clamp_min(0)
            factor = torch.where(self._chance(p["contrast_p"], n, dev), factor, torch.ones_like(factor))
            mean = (TF.rgb_to_grayscale(x) if x.shape[1] == 3 else x).mean((1, 2, 3))
            # torchvision's adjust_contrast, with one factor per image
            x = (factor.view(-1, 1, 1, 1) * x + ((1 - factor) * mean).view(-1, 1, 1, 1)).clamp_(0, 1)
        if p["grayscale"] > 0 and x.shape[1] == 3:
            chosen = torch.nonzero(self._chance(p["grayscale"], n, dev)).flatten()
            x[chosen] = TF.rgb_to_grayscale(x[chosen], num_output_channels=3)
        return x

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian noise of std ``noise_std`` at the model's size, per image with probability ``noise_p``."""
        p = self.params
        if p["noise_std"] > 0 and p["noise_p"] > 0:
            x = x.contiguous()
            chosen = torch.nonzero(self._chance(p["noise_p"], x.shape[0], x.device)).flatten()
            x[chosen] = (x[chosen] + p["noise_std"] * self._randn(x[chosen].shape, x.device)).clamp_(0, 1)
        return x

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        if self.params["flip"] > 0:
            chosen = torch.nonzero(self._chance(self.params["flip"], x.shape[0], x.device)).flatten()
            x[chosen] = x[chosen].flip(-1)
        return x

    def _rotate_shift(self, x: torch.Tensor) -> torch.Tensor:
        """DAN's RandomApply([RandomRotation, RandomCrop(padding)], p): per chosen image, rotation then shift, black fill."""
        p, n, dev, size = self.params, x.shape[0], x.device, x.shape[-1]
        if p["affine_p"] <= 0 or (p["rotation"] <= 0 and p["crop_padding"] <= 0):
            return x
        chosen = torch.nonzero(self._chance(p["affine_p"], n, dev)).flatten()
        k = len(chosen)
        angle = math.radians(p["rotation"]) * (2 * self._rand(k, device=dev) - 1)
        pad = round(p["crop_padding"] * size)
        # RandomCrop(size, padding=pad) is a shift by an integer number of pixels in [-pad, pad] per axis
        shift = (torch.floor(self._rand(k, 2, device=dev) * (2 * pad + 1)) - pad) * (2 / size)
        if k:
            cos, sin = torch.cos(angle), torch.sin(angle)
            theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
            grid = F.affine_grid(theta, [k, x.shape[1], size, size], align_corners=False)
            x = x.contiguous()
            x[chosen] = F.grid_sample(x[chosen], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's RandomErasing (value 0 after normalisation), one rectangle per chosen image."""
        p, (n, _, h, w), dev = self.params, x.shape, x.device
        lo, hi = p["erasing_scale"]
        area = (lo + (hi - lo) * self._rand(n, device=dev)) * h * w
        log_r = math.log(p["erasing_ratio"][0]) + math.log(p["erasing_ratio"][1] / p["erasing_ratio"][0]) * self._rand(n, device=dev)
        eh = torch.sqrt(area * torch.exp(log_r)).round().clamp(1, h)
        ew = torch.sqrt(area / torch.exp(log_r)).round().clamp(1, w)
        top = torch.floor(self._rand(n, device=dev) * (h - eh + 1))
        left = torch.floor(self._rand(n, device=dev) * (w - ew + 1))
        rows = torch.arange(h, device=dev).view(1, h)
        cols = torch.arange(w, device=dev).view(1, w)
        in_rows = (rows >= top.view(-1, 1)) & (rows < (top + eh).view(-1, 1)) & self._chance(p["erasing"], n, dev).view(-1, 1)
        in_cols = (cols >= left.view(-1, 1)) & (cols < (left + ew).view(-1, 1))
        return x.masked_fill_((in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1), 0.0)


class Batches:
    """Batches of one split of a :class:`FaceData`, its images held whole on ``device``.

    Yields ``(x, labels, rows)``: ``x`` is ``transform(uint8 batch)`` (or the uint8 batch when no
    transform), ``rows`` the dataset row indices. ``shuffle`` draws a new order each pass from
    ``generator`` (or torch's global RNG).
    """

    def __init__(
        self,
        data: FaceData,
        split: str,
        batch_size: int,
        transform: nn.Module | None = None,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        max_samples: int | None = None,
    ):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.rows = data.indices(split)[:max_samples]
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size, self.transform, self.shuffle, self.drop_last = batch_size, transform, shuffle, drop_last
        self.generator = generator
        if transform is not None:
            transform.to(self.device)

    def __len__(self) -> int:
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rows = self.rows
        if self.shuffle:
            rows = rows[torch.randperm(len(rows), generator=self.generator)]
        rows = rows.to(self.device)
        for i in range(len(self)):
            batch = rows[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[batch]
            yield (self.transform(x) if self.transform is not None else x), self.labels[batch], batch
