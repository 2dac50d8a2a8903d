"""Attributions and attention maps: shapes, the agreement number, in-region mass, and the walkthrough."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fer_lib import explain
from fer_lib.models import build_model


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(3, 1, 48, 48, generator=g) * 255).to(torch.uint8)


@pytest.fixture(scope="module")
def daf() -> torch.nn.Module:
    return build_model("daf_mhsca", 7, image_size=48).eval()


@pytest.mark.parametrize("name", ["daf_mhsca", "resnet18"])
def test_explanation_maps_have_the_input_shape(name: str, faces: torch.Tensor, daf: torch.nn.Module) -> None:
    model = daf if name == "daf_mhsca" else build_model(name, 7, image_size=48).eval()
    exp = explain.explain_faces(model, faces, model.input_spec, ig_steps=4)
    assert set(exp.attribution) == {"integrated gradients", "grad-cam"}
    assert set(exp.attention) == ({"heads mean", "A_s"} if name == "daf_mhsca" else set())
    for kind, maps in exp.maps().items():
        assert maps.shape == (3, 48, 48), kind
        assert np.isfinite(maps).all(), kind
    assert exp.images.shape == (3, 48, 48, 3)
    assert np.allclose(exp.probs.sum(1), 1, atol=1e-5)
    assert (exp.target == exp.probs.argmax(1)).all()
    if name == "daf_mhsca":
        table = explain.agreement_table(exp)
        assert table.shape == (2, 2)
        assert np.isfinite(table.to_numpy()).all() and (np.abs(table.to_numpy()) <= 1).all()


def test_integrated_gradients_and_grad_cam_shapes() -> None:
    model = build_model("resnet18", 7, image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    target = torch.tensor([0, 3])
    assert explain.integrated_gradients(model, x, target, steps=4).shape == (2, 64, 64)
    cam = explain.grad_cam(model, x, target)
    assert cam.shape == (2, 64, 64) and (cam >= 0).all()
    assert explain.trunk_layer(model) is model.trunk[-1]


def test_agreement_is_a_rank_correlation() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((4, 8, 8))
    assert explain.agreement(a, a) == pytest.approx(1.0)
    assert explain.agreement(a, -a) == pytest.approx(-1.0)
    assert explain.agreement(a, np.exp(3 * a)) == pytest.approx(1.0)  # any monotone rescaling
    flat = np.ones((1, 8, 8))
    assert np.isnan(explain.spearman(flat, a[:1])[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a page fails on any stderr: every map flat is NaN, said quietly
        assert np.isnan(explain.agreement(np.ones((3, 8, 8)), a[:3]))


def test_region_mass_and_area() -> None:
    masks = np.zeros((2, 10, 10), bool)
    masks[:, :5] = True  # top half
    inside = masks.astype(float) + 0.3  # a floor of 0.3 everywhere, mass only in the region
    assert explain.area_fraction(masks) == pytest.approx([0.5, 0.5])
    assert explain.region_mass(inside, masks) == pytest.approx([1.0, 1.0])
    assert explain.region_mass(1 - masks.astype(float), masks) == pytest.approx([0.0, 0.0])
    uniform_noise = np.random.default_rng(0).random((2, 10, 10))
    assert 0.2 < explain.region_mass(uniform_noise, masks).mean() < 0.8
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[:, 32:] = 1
    assert explain.resize_masks(mask, 48).mean() == pytest.approx(0.5)
    exp = explain.Explanation(images=np.zeros((2, 10, 10, 3)), target=np.zeros(2, int), probs=np.ones((2, 7)) / 7,
                              attention={"A_s": np.ones((2, 10, 10))}, attribution={"|IG|": inside})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a map flat on every face: a NaN row, said quietly (a page fails on stderr)
        table = explain.region_table(exp, masks).set_index("map")
    assert table.loc["A_s", "faces"] == 0 and np.isnan(table.loc["A_s", "lift (mass / area)"])
    assert table.loc["|IG|", "faces"] == 2 and table.loc["|IG|", "lift (mass / area)"] == pytest.approx(2.0)


def test_attention_maps_of_an_output(daf: torch.nn.Module) -> None:
    with torch.no_grad():
        maps = explain.attention_maps(daf(torch.randn(2, 3, 48, 48)))
    assert maps["heads mean"].shape == (2, 2, 2) and maps["A_s"].shape == (2, 2, 2)
    assert explain.upsample(maps["A_s"], 48).shape == (2, 48, 48)


@pytest.mark.parametrize("options", [{}, {"use_afc": False, "use_mhsca": False}, {"use_daf": False, "use_ca": False}])
def test_walkthrough_reproduces_the_forward_pass(options: dict, daf: torch.nn.Module) -> None:
    model = daf if not options else build_model("daf_mhsca", 7, image_size=48, **options).eval()
    x = torch.randn(2, 3, 48, 48)
    steps = explain.walkthrough(model, x, head=1)
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(steps[-1].value, out.logits, atol=1e-5)
    assert all(m._trace is None for m in model.modules() if hasattr(m, "keep"))  # recording ends with the walkthrough
    by_name = {s.name: s.value for s in steps}
    blocks = {s.block for s in steps}
    assert ("AFC" in blocks) == options.get("use_afc", True) and ("DAF" in blocks) == options.get("use_daf", True)
    if "DAF" in blocks:
        assert torch.allclose(by_name["A_s (outer product over rows and columns)"], out.extras["A_s"], atol=1e-6)
    if options.get("use_mhsca", True):  # the head shown is the model's head 1: its gate's channel mean is that head's map
        gate = next(s.value for s in steps if s.equation == "Eq. 9" and s.name.endswith("x_F'))"))
        assert torch.allclose(gate.mean(dim=1), out.head_maps[:, 1], atol=1e-6)
    equations = {s.equation for s in steps}
    if not options:
        assert {f"Eq. {k}" for k in range(1, 14)} <= equations
        layer4 = next(s for s in steps if s.name == "layer4")
        assert layer4.shape == (2, 512, 2, 2)
        assert next(s for s in steps if s.name == "bn1").value.min() < 0  # kept before the in-place ReLU
    table = explain.steps_table(steps)
    assert len(table) == len(steps) and {"block", "step", "equation", "shape"} <= set(table.columns)


def test_notebooks_use_the_report_runs() -> None:
    from fer_lib import paper
    from fer_lib.report import plan, results

    ids = {m: c.id for m, c in plan.figure_configs("smoke", "synthetic", 0).items()}
    for label, model in paper.MODEL_OF_METHOD.items():
        assert results.run_config(label, model, "synthetic", "smoke", 0).id == ids[label]
    report_plan = plan.make_plan("smoke")
    assert {m: cfgs[0].id for m, cfgs in report_plan.groups["figures"].items()} == ids


def test_a_missing_checkpoint_gives_no_model_or_a_labelled_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorded run without its checkpoint is not shown, or (walkthrough) stands in untrained, saying so."""
    from types import SimpleNamespace

    from fer_lib.report import plan, results

    monkeypatch.setattr(results, "get_run", lambda cfg, **kw: SimpleNamespace(id="ferplus-daf_mhsca-cpu-x", classes=("a",) * 7))

    def no_checkpoint(record: object, device: object = None) -> None:
        raise FileNotFoundError("checkpoint.pt")

    monkeypatch.setattr(results, "model_of", no_checkpoint)
    report_plan = plan.make_plan("smoke", no_train=True)
    data = SimpleNamespace(classes=tuple("abcdefg"))
    (run,) = results.load_runs(report_plan, {"DAF-MHSCA": "daf_mhsca"}, data=data)
    assert run.model is None and not run.untrained and "ferplus-daf_mhsca-cpu-x has no checkpoint" in run.note
    (run,) = results.load_runs(report_plan, {"DAF-MHSCA": "daf_mhsca"}, data=data, stand_in=True)
    assert run.model is not None and run.untrained and run.classes == data.classes
    assert run.note.startswith("UNTRAINED") and "has no checkpoint" in run.note


def test_a_run_without_a_record_is_an_error_unless_no_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebooks never train: without --no-train a missing run names its id."""
    from fer_lib.report import plan, results

    monkeypatch.setattr(results, "get_run", lambda cfg, **kw: None)
    report_plan = plan.make_plan("smoke")
    with pytest.raises(results.MissingRun, match=report_plan.groups["figures"]["DAN"][0].id):
        results.load_runs(report_plan, {"DAN": "dan"})
    report_plan.no_train = True
    (run,) = results.load_runs(report_plan, {"DAN": "dan"})
    assert run.untrained and "not trained yet" in run.note


def test_one_model_input_for_evaluation_and_the_explainers() -> None:
    """``model_input`` is the evaluation transform: predict_indices and a direct forward see the same batch."""
    from fer_lib.data import load_dataset
    from fer_lib.data.pipeline import Augment
    from fer_lib.engine.evaluate import predict_indices
    from fer_lib.engine.inputs import model_input

    data = load_dataset("synthetic", per_class=(2, 1, 1), size=40)
    model = build_model("resnet18", data.num_classes, image_size=48).eval()
    rows = data.indices("test")
    x = model_input(data.images[rows], model.input_spec)
    assert x.shape == (len(rows), 3, 48, 48) and x.dtype == torch.float32
    assert torch.equal(x, Augment(model.input_spec, train=False)(data.images[rows]))
    with torch.no_grad():
        direct = model(x).logits.numpy()
    got = predict_indices(model, data, rows, model.input_spec, device="cpu", bf16=False)["logits"]
    np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-5)
