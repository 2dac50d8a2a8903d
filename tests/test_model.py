"""DAF-MHSCA: shapes, gradients, ablation switches, head count, backbone weights, determinism."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from fer_lib.models import ModelOutput, available_models, build_model
from fer_lib.models.backbone import BackboneWeightsError, load_backbone_weights
from fer_lib.models.daf_mhsca import DAF, feature_size


def n_params(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size, side", [(224, 7), (112, 4)])
def test_output_shapes(size: int, side: int) -> None:
    model = build_model("daf_mhsca", 7, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 7)
    assert out.features.shape == (2, 512)
    assert out.head_maps.shape == (2, 4, side, side)
    assert out.heads.shape == (2, 4, 512)
    assert out.extras["A_s"].shape == (2, 512, side, side)
    assert out.extras["A_c"].shape == (2, 512)
    assert feature_size(size) == side


def test_every_parameter_gets_a_gradient() -> None:
    model = build_model("daf_mhsca", 8, image_size=64)
    out = model(torch.randn(3, 3, 64, 64))
    (out.logits.sum() + out.head_maps.sum()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_ablation_switches_remove_exactly_their_module() -> None:
    full = build_model("daf_mhsca", 7)
    total = n_params(full)
    assert total - n_params(build_model("daf_mhsca", 7, use_afc=False)) == n_params(full.afc) > 0
    assert total - n_params(build_model("daf_mhsca", 7, use_daf=False)) == n_params(full.daf) > 0
    assert total - n_params(build_model("daf_mhsca", 7, use_mhsca=False)) == n_params(full.mhsca) > 0
    no_ca = build_model("daf_mhsca", 7, use_ca=False)
    assert total - n_params(no_ca) == sum(n_params(h.channel) for h in full.mhsca.heads) > 0
    assert all(h.channel is None for h in no_ca.mhsca.heads)


def test_ablated_forwards() -> None:
    x = torch.randn(2, 3, 64, 64)
    no_daf = build_model("daf_mhsca", 7, image_size=64, use_daf=False)(x)
    assert "A_s" not in no_daf.extras and no_daf.head_maps.shape == (2, 4, 2, 2)
    no_mhsca = build_model("daf_mhsca", 7, image_size=64, use_mhsca=False)(x)
    assert no_mhsca.head_maps is None and no_mhsca.logits.shape == (2, 7)


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16])
def test_head_count(heads: int) -> None:
    model = build_model("daf_mhsca", 7, image_size=64, num_heads=heads).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.head_maps.shape[1] == heads and len(model.mhsca.heads) == heads


def test_afc_concat_switch_changes_only_the_fusion_conv() -> None:
    summed, concat = build_model("daf_mhsca", 7, afc_fusion="sum"), build_model("daf_mhsca", 7, afc_fusion="concat")
    assert n_params(concat) - n_params(summed) == 2 * 512 * 512
    with pytest.raises(ValueError, match="afc_fusion"):
        build_model("daf_mhsca", 7, afc_fusion="mean")


def test_daf_cross_readings() -> None:
    x = torch.randn(2, 512, 4, 4)
    for cross in ("standard", "literal"):
        a_s, a_c = DAF(512, 4, 4, cross)(x)
        assert a_s.shape == (2, 512, 4, 4) and a_c.shape == (2, 512)
        assert torch.all((a_s > 0) & (a_s < 1))
    with pytest.raises(ValueError, match="square"):
        DAF(512, 4, 3, "literal")


def test_daf_channel_concat_reading() -> None:
    # Eq. 7 over channels: W_Ca maps 2C -> C and one x_Ca enters both terms of Eq. 8.
    tokens, channels = DAF(512, 3, 3), DAF(512, 3, 3, concat="channels")
    assert tokens.w_ca.in_features == 512 and channels.w_ca.in_features == 1024
    a_s, a_c = channels(torch.randn(2, 512, 3, 3))
    assert a_s.shape == (2, 512, 3, 3) and a_c.shape == (2, 512)
    rec = {}
    channels.keep = lambda **t: rec.update(t)  # capture what forward records
    channels(torch.randn(2, 512, 3, 3))
    assert rec["x_Ca"].shape == (2, 3, 512)
    assert torch.allclose(rec["a_H"].squeeze(3).transpose(1, 2), torch.sigmoid(rec["x_Ha"] + rec["x_Ca"]))
    assert torch.allclose(rec["a_W"].squeeze(2).transpose(1, 2), torch.sigmoid(rec["x_Wa"] + rec["x_Ca"]))
    out = build_model("daf_mhsca", 7, image_size=72, daf_concat="channels")(torch.randn(2, 3, 72, 72))
    assert out.logits.shape == (2, 7)
    with pytest.raises(ValueError, match="square"):
        DAF(512, 4, 3, concat="channels")
    with pytest.raises(ValueError, match="daf_concat"):
        DAF(512, 3, 3, concat="stack")


def test_small_map_convolutions_compute_the_same_function() -> None:
    # The gather + matmul path of tiny CPU maps (x_F at 72 px is 3 x 3) against torch's convolution.
    from fer_lib.models.layers import SmallMapConv2d

    torch.manual_seed(0)
    for kernel, stride, padding, dilation, side in [(3, 1, 1, 1, 3), (3, 1, 2, 2, 3), (3, 1, 4, 4, 3), (3, 2, 1, 1, 5),
                                                    (1, 2, 0, 1, 5), ((1, 3), 1, (0, 1), 1, 3), (7, 2, 3, 1, 9)]:
        conv = torch.nn.Conv2d(6, 5, kernel, stride, padding, dilation, bias=True)
        fast = SmallMapConv2d(6, 5, kernel, stride, padding, dilation, bias=True)
        fast.load_state_dict(conv.state_dict())
        x = torch.randn(2, 6, side, side, requires_grad=True)
        y, y_fast = conv(x), fast(x)
        assert y_fast.shape == y.shape and torch.allclose(y_fast, y, atol=1e-5)
        g, = torch.autograd.grad(y.square().sum(), x)
        g_fast, = torch.autograd.grad(y_fast.square().sum(), x)
        assert torch.allclose(g_fast, g, atol=1e-4)
    model = build_model("daf_mhsca", 7, image_size=72)
    assert any(isinstance(m, SmallMapConv2d) for m in model.modules())
    assert all(m.groups == 1 for m in model.modules() if isinstance(m, SmallMapConv2d))


def test_attention_map_is_outer_product_of_directions() -> None:
    # Eq. 8: A_s = a_h (x) a_w, so every channel's h x w map has rank one.
    a_s, _ = DAF(512, 5, 5).eval()(torch.randn(1, 512, 5, 5))
    ranks = torch.linalg.matrix_rank(a_s[0].double(), rtol=1e-6)
    assert torch.all(ranks == 1)


def test_gates_are_fp32_under_bf16_autocast() -> None:
    # The convolutions follow autocast; every sigmoid gate is fp32 (in bf16 a gate above 0.998 is 1.0 with zero gradient).
    from fer_lib.models.daf_mhsca import traced

    model = build_model("daf_mhsca", 7, image_size=96).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), traced(model) as record:
        model(torch.randn(2, 3, 96, 96))
    assert record[""]["x_F"].dtype == record["daf"]["x_Ha"].dtype == torch.bfloat16
    gates = [record["daf"]["a_H"], record["daf"]["A_s"], record["mhsca.heads.0"]["gate"], record["afc"]["x_FcalS"]]
    assert {g.dtype for g in gates} == {torch.float32}


def test_head_gate_switch() -> None:
    out = build_model("daf_mhsca", 7, image_size=64, head_gate="channel_sum")(torch.randn(2, 3, 64, 64))
    assert out.head_maps.shape == (2, 4, 2, 2)


def test_seeded_forward_is_deterministic() -> None:
    def run() -> torch.Tensor:
        torch.manual_seed(123)
        model = build_model("daf_mhsca", 7, image_size=64).eval()
        with torch.no_grad():
            return model(torch.randn(2, 3, 64, 64)).logits

    assert torch.equal(run(), run())


def test_backbone_weights_in_dan_layout_load(tmp_path) -> None:
    reference = resnet18()
    state = reference.state_dict()
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "resnet18_msceleb.pth")
    model = build_model("daf_mhsca", 7, image_size=64, pretrained=tmp_path / "resnet18_msceleb.pth")
    assert torch.equal(model.trunk[0].weight, state["conv1.weight"])
    assert torch.equal(model.trunk[7][1].conv2.weight, state["layer4.1.conv2.weight"])
    torch.save(state, tmp_path / "plain.pth")  # a plain torchvision state dict also fits
    build_model("resnet18", 7, pretrained=tmp_path / "plain.pth")


def test_wrong_backbone_file_fails_with_path_and_keys(tmp_path) -> None:
    with pytest.raises(BackboneWeightsError, match="not found: .*nothere.pth"):
        build_model("daf_mhsca", 7, pretrained=tmp_path / "nothere.pth")
    bad = resnet18().state_dict()
    bad.pop("layer1.0.conv1.weight")
    bad["layer4.1.conv2.weight"] = torch.zeros(3, 3)
    torch.save({"state_dict": bad}, tmp_path / "bad.pth")
    with pytest.raises(BackboneWeightsError) as err:
        load_backbone_weights(build_model("resnet18", 7).trunk, tmp_path / "bad.pth")
    message = str(err.value)
    assert "bad.pth" in message and "layer1.0.conv1.weight" in message and "layer4.1.conv2.weight" in message


def test_registry() -> None:
    assert {"daf_mhsca", "resnet18"} <= set(available_models())
    with pytest.raises(KeyError, match="unknown model"):
        build_model("nope", 7)
