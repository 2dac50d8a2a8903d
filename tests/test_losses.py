"""The three losses of Eq. 14-17 and the baselines' losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_lib.losses import (
    AffinityLoss,
    build_criterion,
    class_weights,
    ddamfn_attention_loss,
    diversity_loss,
    partition_loss,
    weighted_cross_entropy,
)
from fer_lib.models import ModelOutput, build_model


def test_class_weights_follow_eq14() -> None:
    counts = torch.tensor([3995, 436, 4097, 7215, 4830, 3171, 4965])  # FER2013 training split
    expected = [math.sqrt(7215 / (n + 1e-6)) for n in counts.tolist()]
    assert torch.allclose(class_weights(counts), torch.tensor(expected), rtol=1e-6)
    assert class_weights(counts)[3] == pytest.approx(1.0)


def test_weighted_ce_divides_by_n() -> None:
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 1])
    w = torch.tensor([1.0, 2.0, 3.0])
    per_sample = F.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(weighted_cross_entropy(logits, labels, w), (per_sample * w[labels]).sum() / 5)
    assert torch.allclose(weighted_cross_entropy(logits, labels, None), F.cross_entropy(logits, labels))


def test_affinity_is_zero_on_centres_and_grows_away() -> None:
    loss = AffinityLoss(4, 16)
    labels = torch.tensor([0, 1, 2, 3, 1])
    on_centres = loss.centers.detach()[labels]
    assert loss(on_centres, labels).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(on_centres + 0.5, labels).item() > 0
    expected = (16 * 0.25) / (loss.centers.var(dim=0).sum().item() + 1e-6)
    assert loss(on_centres + 0.5, labels).item() == pytest.approx(expected, rel=1e-4)


def test_affinity_weights_scale_per_class() -> None:
    weights = torch.tensor([1.0, 3.0])
    loss = AffinityLoss(2, 4, weights)
    feats = loss.centers.detach()[torch.tensor([1])] + 1.0
    plain = AffinityLoss(2, 4)
    plain.centers.data.copy_(loss.centers.data)
    assert loss(feats, torch.tensor([1])).item() == pytest.approx(3 * plain(feats, torch.tensor([1])).item())


def test_diversity_prefers_orthogonal_heads() -> None:
    one = torch.zeros(2, 1, 4, 4)
    one[:, :, :2] = 1.0
    identical = one.repeat(1, 2, 1, 1)
    orthogonal = torch.cat([one, 1.0 - one], dim=1)
    assert diversity_loss(identical) > diversity_loss(orthogonal)
    assert diversity_loss(identical).item() == pytest.approx(0.3)  # no variance, cosine 1
    assert diversity_loss(orthogonal).item() == pytest.approx(-0.7 * 0.25)  # variance 1/4, cosine 0


def test_diversity_edge_cases() -> None:
    assert diversity_loss(None).item() == 0.0
    single = torch.rand(2, 1, 3, 3)
    assert diversity_loss(single).item() == 0.0
    assert diversity_loss(single, variance="spatial").item() < 0
    with pytest.raises(ValueError, match="variance"):
        diversity_loss(single, variance="other")


def test_baseline_losses() -> None:
    same = torch.ones(4, 3, 8)
    spread = torch.randn(4, 3, 8)
    assert partition_loss(spread) < partition_loss(same + 1e-3 * spread)
    assert partition_loss(torch.randn(4, 1, 8)).item() == 0.0
    assert ddamfn_attention_loss(spread) < ddamfn_attention_loss(same + 1e-3 * spread)


def counts7() -> torch.Tensor:
    return torch.tensor([10, 2, 10, 20, 12, 8, 12])


def test_total_loss_is_eq17_with_its_parts() -> None:
    model = build_model("daf_mhsca", 7, image_size=64)
    crit = build_criterion("daf_mhsca", counts7(), 7, 512)
    labels = torch.tensor([0, 3, 1])
    result = crit(model(torch.randn(3, 3, 64, 64)), labels)
    parts = result.parts
    assert set(parts) == {"wce", "dna", "mhv"}
    assert result.total.item() == pytest.approx((parts["wce"] + parts["dna"] + 0.3 * parts["mhv"]).item(), rel=1e-5)
    result.total.backward()
    assert crit.affinity.centers.grad is not None


def test_theta_and_switches() -> None:
    out = ModelOutput(torch.randn(4, 7), torch.randn(4, 512), head_maps=torch.rand(4, 4, 2, 2))
    labels = torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    a = build_criterion("daf_mhsca", counts7(), 7, 512, theta=0.3)(out, labels)
    torch.manual_seed(0)
    b = build_criterion("daf_mhsca", counts7(), 7, 512, theta=1.0)(out, labels)
    assert (b.total - a.total).item() == pytest.approx(0.7 * a.parts["mhv"].item(), rel=1e-5)
    c = build_criterion("daf_mhsca", counts7(), 7, 512, use_affinity=False, use_diversity=False)(out, labels)
    assert c.total.item() == pytest.approx(c.parts["wce"].item())


def test_gated_weighting_caps_auxiliary_gradients() -> None:
    model = build_model("daf_mhsca", 7, image_size=64)
    crit = build_criterion("daf_mhsca", counts7(), 7, 512, weighting="gated").train()
    result = crit(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 3]))
    assert 0 < result.parts["gate_dna"] <= 1 and 0 < result.parts["gate_mhv"] <= 1
    result.total.backward()
    with pytest.raises(ValueError, match="weighting"):
        build_criterion("daf_mhsca", counts7(), 7, 512, weighting="auto")


def test_criterion_registry() -> None:
    out = ModelOutput(torch.randn(2, 7), torch.randn(2, 512), heads=torch.randn(2, 4, 512))
    labels = torch.tensor([1, 2])
    for name, keys in {"ce": {"ce"}, "dan": {"ce", "affinity", "partition"}, "ddamfn": {"ce", "attention"}}.items():
        assert set(build_criterion(name, counts7(), 7, 512)(out, labels).parts) == keys
    with pytest.raises(KeyError, match="unknown criterion"):
        build_criterion("focal", counts7(), 7, 512)
    with pytest.raises(ValueError, match="class_counts"):
        build_criterion("ce", counts7(), 8, 512)
    with pytest.raises(TypeError):
        build_criterion("dan", counts7(), 7, 512, theta=0.5)


def test_gated_weighting_with_theta_zero_and_bad_loss_options() -> None:
    model = build_model("daf_mhsca", 7, image_size=72)
    crit = build_criterion("daf_mhsca", counts7(), 7, 512, weighting="gated", theta=0.0).train()
    result = crit(model(torch.randn(4, 3, 72, 72)), torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(result.total) and result.parts["gate_mhv"] == 1.0
    for bad in ({"theta": -0.1}, {"theta": "abc"}, {"alpha": -1.0}, {"beta": True}):
        with pytest.raises(ValueError, match="non-negative number"):
            build_criterion("daf_mhsca", counts7(), 7, 512, **bad)


def test_diversity_is_identically_zero_with_one_head() -> None:
    # Table 5's N_h = 1: no variance across one head and no pair, so L_mhv (and its gradient) vanish.
    maps = torch.rand(3, 1, 3, 3, requires_grad=True)
    loss = diversity_loss(maps)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(maps.grad) == 0


def test_probe_reports_each_terms_gradient_into_x() -> None:
    model = build_model("daf_mhsca", 7, image_size=72)
    crit = build_criterion("daf_mhsca", counts7(), 7, 512).train()
    out = model(torch.randn(4, 3, 72, 72))
    crit.probe_grads = True
    parts = crit(out, torch.tensor([0, 1, 2, 3])).parts
    assert {"grad_wce", "grad_dna", "grad_mhv"} <= set(parts)
    assert parts["grad_wce"] > 0 and parts["grad_mhv"] > 0
    # At initialisation the sigmoid-gate head maps are nearly flat: theta * L_mhv pushes x_F' far less than L_wce.
    assert parts["grad_mhv"] < parts["grad_wce"] / 10
    crit.probe_grads = False
    assert "grad_wce" not in crit(out, torch.tensor([0, 1, 2, 3])).parts
