"""The head explorer: its update function without a browser, the widget, and the static fallback in the HTML."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from fer_lib import PROJECT_ROOT, explore  # noqa: E402
from fer_lib.engine.inputs import model_input  # noqa: E402
from fer_lib.models import build_model  # noqa: E402

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def daf() -> torch.nn.Module:
    return build_model("daf_mhsca", 7, image_size=48, num_heads=4).eval()


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    return (torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)


def test_update_gives_every_map_for_a_selection(daf: torch.nn.Module, face: torch.Tensor) -> None:
    view = explore.update(daf, face, head=2)
    assert view.head == 2
    assert view.head_maps.shape == (4, 2, 2)
    assert view.a_s.shape == (2, 2) and view.a_c.shape == (512,)
    assert np.array_equal(view.head_map, view.head_maps[2])
    assert view.probs.shape == (7,) and view.probs.sum() == pytest.approx(1, abs=1e-5)
    assert view.image.shape == (48, 48, 3)
    with torch.no_grad():
        out = daf(model_input(face[None], daf.input_spec))
    assert np.allclose(view.head_maps, out.head_maps[0].numpy(), atol=1e-6)
    assert np.allclose(view.a_s, out.extras["A_s"][0].mean(0).numpy(), atol=1e-6)
    assert explore.update(daf, face, head=99).head == 3  # clipped to the heads there are
    rgb = np.repeat(face[0].numpy()[..., None], 3, axis=2)  # an H x W x 3 photo works too
    assert explore.update(daf, rgb, head=0).a_s.shape == (2, 2)


def test_update_and_render_without_attention(face: torch.Tensor) -> None:
    model = build_model("resnet18", 7, image_size=48).eval()
    view = explore.update(model, face, head=1)
    assert view.head is None and view.head_maps is None and view.a_s is None and view.a_c is None
    fig = explore.render(view, CLASSES)
    assert len(fig.axes) >= 5


def test_widget_redraws_on_a_change(daf: torch.nn.Module, face: torch.Tensor) -> None:
    ui = explore.explorer({"untrained": (daf, daf.input_spec, CLASSES)}, [face, face], labels=[0, 1])
    head_slider, face_slider = ui.children[0].children[1], ui.children[1].children[0]
    assert ui.view.head == 0 and head_slider.max == 3
    head_slider.value = 3
    assert ui.view.head == 3
    face_slider.value = 1
    assert ui.view.head == 3 and ui.view.head_maps.shape == (4, 2, 2)


def test_static_fallback_in_rendered_html(tmp_path: Path) -> None:
    """Execute the explorer notebook headless (untrained stand-in, nothing trained) and render it without a kernel."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    env = dict(os.environ, FER_RESULTS=str(tmp_path / "results"))
    old = os.environ.get("FER_RESULTS")
    os.environ.update(env)
    try:
        pm.execute_notebook(str(PROJECT_ROOT / "notebooks" / "09_explore_heads.ipynb"), str(tmp_path / "09.ipynb"),
                            parameters={"output_dir": str(tmp_path / "report"), "no_train": True, "interactive": False,
                                        "methods": {"DAF-MHSCA": "daf_mhsca"}},  # as the report runs it
                            kernel_name="python3", progress_bar=False, cwd=str(PROJECT_ROOT), start_timeout=120, execution_timeout=120)
    finally:
        if old is None:
            os.environ.pop("FER_RESULTS")
        else:
            os.environ["FER_RESULTS"] = old
    html, _ = HTMLExporter().from_notebook_node(nbformat.read(tmp_path / "09.ipynb", as_version=4))
    start = html.find(f'id="{explore.STATIC_MARKER}"')
    assert start > 0
    assert len(re.findall(r'<img[^>]+src="figures/explore_[^"]+\.png"', html[start:])) >= 3  # linked, not embedded
    assert "UNTRAINED" in html
    assert list((tmp_path / "report" / "figures").glob("explore_*.png"))


def test_uploaded_photo_is_cropped_to_its_face() -> None:
    import cv2
    from skimage import data

    ok, png = cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    crop = explore.upload_face(png.tobytes())
    assert crop.ndim == 3 and crop.shape[0] == crop.shape[1] and 80 < crop.shape[0] < 160
    with pytest.raises(ValueError, match="not an image"):
        explore.upload_face(b"not an image")


def test_explorer_without_runs_says_what_to_do(face: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="at least one run"):
        explore.explorer({}, [face])
