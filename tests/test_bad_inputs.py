"""Bad input is never silent and never unpickled: each case names the file and leaves nothing behind.

16-bit images, face boxes outside their image, test-only classes, reordered FERPlus rows, repeated
seeds, broken photos in a predict batch, small detections, the command line's one-line errors, the
import graph, and crafted pickles as checkpoints. Seconds in all; no training beyond set-up.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from data_fixtures import fer2013_rows, write_affectnet, write_fer2013_csv, write_ferplus_csv, write_image_folder, write_rafdb
from fer_lib import PROJECT_ROOT, cli, predict
from fer_lib.commands import subcommand
from fer_lib.data import DatasetError, load_dataset
from fer_lib.data.images import read_image
from fer_lib.engine import ConfigError, RunConfig, get_run, load_model, load_record
from fer_lib.models import build_model

GREY_16 = 32896  # 128 * 257: mid grey in 16 bits, 128 in 8 bits (PIL's convert clips it to 255)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FER_CACHE", str(cache))
    return cache


def write_16bit(path: Path, value: int | np.ndarray = GREY_16, size: int = 40) -> Path:
    """A 16-bit grey PNG (PIL mode I;16), whatever the file's suffix says."""
    pixels = np.full((size, size), value, np.uint16) if np.isscalar(value) else value.astype(np.uint16)
    im = Image.fromarray(pixels)
    assert im.mode == "I;16"
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG")
    return path


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---- 1. 16-bit images are scaled to 8 bit, not clipped ----------------------------------------

def test_16bit_png_is_scaled_not_saturated(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64)
    path = write_16bit(tmp_path / "ramp.png", ramp)
    grey = read_image(path, None, 1)[0]
    assert np.array_equal(grey, np.clip(np.rint(ramp.astype(np.uint16) / 257), 0, 255).astype(np.uint8))
    assert grey.min() == 0 and grey.max() == 255 and 100 < grey.mean() < 155  # not mostly 255
    rgb = read_image(path, 32, 3)
    assert rgb.shape == (3, 32, 32) and np.array_equal(rgb[0], rgb[2])


def test_16bit_images_in_folder_rafdb_and_affectnet(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "pets", per_class=1)
    write_16bit(folder / "train" / "cat" / "0.png")
    data = load_dataset("folder", root=folder, image_size=24)
    assert (data.images[0] == 128).all()

    rafdb = write_rafdb(tmp_path / "rafdb", 1, 1)
    write_16bit(rafdb / "Image" / "aligned" / "train_00001_aligned.jpg", size=100)  # PIL reads the content, not the name
    assert (load_dataset("rafdb", root=tmp_path, image_size=32).images[0] == 128).all()

    affectnet = write_affectnet(tmp_path / "affectnet", {"training.csv": [0, 1], "validation.csv": [2]})
    write_16bit(affectnet / "Manually_Annotated_Images" / "1" / f"{0:040x}.jpg", size=80)
    assert (load_dataset("affectnet8", root=tmp_path, image_size=32).images[0] == 128).all()


def test_16bit_photo_for_predict(tmp_path: Path) -> None:
    assert (predict.read_photo(write_16bit(tmp_path / "photo.png")) == 128).all()


# ---- 2. an AffectNet face box wholly outside its image -----------------------------------------

def test_affectnet_box_outside_the_image_names_file_and_line(tmp_path: Path, _own_cache: Path) -> None:
    base = write_affectnet(tmp_path / "affectnet", {"training.csv": [0, 1], "validation.csv": [2]}, size=80)
    train = base / "training.csv"
    lines = train.read_text().splitlines()
    lines[2] = lines[2].replace(",10,12,60,56,", ",200,12,60,56,")  # second face: x = 200 in an 80 px image
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        load_dataset("affectnet8", root=tmp_path, image_size=32)
    message = str(err.value)
    assert "training.csv line 3" in message and f"{1:040x}.jpg" in message
    assert "(200, 12, 60, 56) lies wholly outside the 80 x 80 image" in message and "\n" not in message
    assert not _own_cache.exists() or not list(_own_cache.glob("affectnet8-*"))  # nothing cached
    lines[2] = lines[2].replace(",200,12,60,56,", ",70,70,60,56,")  # reaching past the border: padded, kept
    train.write_text("\n".join(lines) + "\n")
    assert len(load_dataset("affectnet8", root=tmp_path, image_size=32).labels) == 3


# ---- 3. a class folder only under test/ --------------------------------------------------------

def test_folder_class_only_in_test(tmp_path: Path) -> None:
    base = write_image_folder(tmp_path / "pets", per_class=1)
    write_image_folder(base, classes=("bird",), splits=("test",), per_class=1)
    with pytest.raises(DatasetError, match=r"test/bird: class 'bird' has no training images \(.*train/bird is missing\)"):
        load_dataset("folder", root=base)


# ---- 4. FERPlus rows out of order, and votes all zero --------------------------------------------

def _ferplus(tmp_path: Path, votes: list[list[int]], order: list[int] | None = None) -> Path:
    rows = fer2013_rows((4, 2, 2))
    write_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv", rows)
    usages = [u for _, _, u in rows]
    names = [f"fer{i:07d}.png" for i in range(len(rows))]
    order = order or list(range(len(rows)))
    return write_ferplus_csv(tmp_path / "ferplus" / "fer2013new.csv", [votes[i] for i in order],
                             [usages[i] for i in order], [names[i] for i in order])


def test_ferplus_reordered_rows_name_the_line(tmp_path: Path) -> None:
    good = [[0, 9, 0, 0, 0, 0, 0, 0, 1, 0]] * 8
    _ferplus(tmp_path, good, [0, 3, 2, 1, 4, 5, 6, 7])  # two Training rows swapped: Usage cannot tell
    with pytest.raises(DatasetError, match=r"line 4: Image name fer0000002.png comes after fer0000003.png \(line 3\)"):
        load_dataset("ferplus", root=tmp_path)
    _ferplus(tmp_path, good)
    assert len(load_dataset("ferplus", root=tmp_path).labels) == 8


def test_ferplus_votes_all_zero_say_so(tmp_path: Path) -> None:
    _ferplus(tmp_path, [[0] * 10] * 8)
    with pytest.raises(DatasetError) as err:
        load_dataset("ferplus", root=tmp_path)
    assert "'train' split has no samples left: all its 4 rows are dropped (4 with no votes at all" in str(err.value)
    assert "split column" not in str(err.value)


# ---- 5. a seed given twice ------------------------------------------------------------------------

def test_seed_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["train", "--model", "resnet18", "--seed", "0", "0", "--results", str(tmp_path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: --seed lists 0 more than once")
    assert not (tmp_path / "runs").exists()


# ---- 6. bad photos in a predict batch -------------------------------------------------------------

@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "daf.pt"
    torch.save({"model": build_model("daf_mhsca", 7, image_size=48).state_dict(), "epoch": 0}, path)
    return path


@pytest.fixture
def astronaut(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_predict_skips_each_bad_photo_in_one_line(tmp_path: Path, weights: Path, astronaut: Path,
                                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    locked = tmp_path / "locked.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(locked)
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: refuse it the way the OS would
        real_open = Image.open

        def guarded_open(fp, *args, **kwargs):
            if Path(fp) == locked:
                raise PermissionError(13, "Permission denied", str(fp))
            return real_open(fp, *args, **kwargs)

        monkeypatch.setattr(Image, "open", guarded_open)
    bomb = tmp_path / "bomb.png"
    Image.new("L", (2000, 2000)).save(bomb)  # a few kB on disk, 4 million pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # PIL refuses over twice this
    out = tmp_path / "out"
    photos = [empty, folder, locked, bomb, astronaut]
    assert cli.main(["predict", *map(str, photos), "--weights", str(weights), "--image-size", "48", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    reasons = {empty: "unreadable or truncated image (an empty file, 0 bytes)", folder: "a folder, not an image file",
               locked: "cannot be read (permission denied)", bomb: "refused as a possible decompression bomb"}
    for photo, reason in reasons.items():
        (line,) = [line for line in error_lines(err) if str(photo) in line]
        assert line.startswith(f"skipped {photo}: {reason}")
    doc = json.loads((out / "predictions.json").read_text())
    assert [p["error"] is None for p in doc["photos"]] == [False, False, False, False, True]
    table = pd.read_csv(out / "predictions.csv")
    assert table["photo"].tolist() == [str(astronaut)]
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_overlay.png", "predictions.csv", "predictions.json"]


# ---- 7. detections largest first, far smaller ones dropped ------------------------------------------

def test_rank_boxes_orders_by_size_and_drops_small_ones() -> None:
    boxes = [(10, 10, 20, 20), (300, 40, 60, 60), (100, 50, 120, 120), (5, 200, 43, 43), (0, 0, 41, 41)]
    # 0.35 x 120 = 42: the 43 px face stays, the 41 and 20 px ones go
    assert predict.rank_boxes(boxes) == [(100, 50, 120, 120), (300, 40, 60, 60), (5, 200, 43, 43)]
    assert predict.rank_boxes([]) == []
    assert predict.rank_boxes(boxes, min_ratio=0)[-1] == (10, 10, 20, 20)


def test_crop_faces_uses_the_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    class Cascade:
        def __init__(self, name: str) -> None:
            self.boxes = np.array([(10, 10, 20, 20), (200, 40, 60, 60), (60, 50, 120, 120)]) if name == predict.FACE_CASCADE else []

        def detectMultiScale(self, *args, **kwargs):  # noqa: N802 (OpenCV's name)
            return self.boxes

    monkeypatch.setattr(predict, "cascade", lambda name=predict.FACE_CASCADE: Cascade(name))
    faces = predict.crop_faces(np.zeros((240, 320, 3), np.uint8))
    assert [f.box for f in faces] == [(60, 50, 120, 120), (200, 40, 60, 60)]


# ---- 8. the command line: one line, status 2; --debug; Ctrl-C ----------------------------------------

@pytest.fixture
def raising() -> str:
    """A temporary subcommand raising the exception class named by its argument."""

    @subcommand("raise", "raise an exception")
    def _raise(parser):
        parser.add_argument("kind")

        def run(args):
            raise {"config": ConfigError("bad config\nsecond line"), "dataset": DatasetError("x.csv: bad row"),
                   "predict": predict.PredictError("no model"), "permission": PermissionError(13, "Permission denied", "/x"),
                   "missing": FileNotFoundError(2, "No such file or directory", "/y"),
                   "interrupt": KeyboardInterrupt(), "bug": ZeroDivisionError("a bug")}[args.kind]

        return run

    yield "raise"
    del cli.SUBCOMMANDS["raise"]


@pytest.mark.parametrize("kind, text", [("config", "bad config second line"), ("dataset", "x.csv: bad row"), ("predict", "no model"),
                                        ("permission", "/x: Permission denied"), ("missing", "/y: No such file or directory")])
def test_user_errors_print_one_line(raising: str, kind: str, text: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main([raising, kind]) == 2
    assert error_lines(capsys.readouterr().err) == [f"error: {text}"]
    with pytest.raises(Exception):
        cli.main(["--debug", raising, kind])  # the traceback, only with --debug
    with pytest.raises(Exception):
        cli.main([raising, "--debug", kind])


def test_interrupt_and_bugs(raising: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main([raising, "interrupt"]) == 130
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("interrupted")
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: its traceback shows
        cli.main([raising, "bug"])


def test_which_bogus_lists_the_choices(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", "--run", "x", "--which", "bogus"])
    assert exit_.value.code == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: argument --which: invalid choice: 'bogus'") and "best_val" in line and "last" in line


def test_cuda_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["train", "--model", "resnet18", "--device", "cuda", "--results", str(tmp_path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: --device cuda: CUDA is not available") and not (tmp_path / "runs").exists()


def test_predict_weights_errors(tmp_path: Path, weights: Path, astronaut: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["predict", str(astronaut), "--out", str(tmp_path / "out")]
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert cli.main([*base, "--weights", str(text)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {text} is not a torch checkpoint")
    assert cli.main([*base, "--weights", str(weights), "--model", "nosuchnet"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "unknown model 'nosuchnet'; choose one of" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra", [["--set", "batch_size=100000"], ["--profile", "cpu", "--dataset", "folder", "--data-option", "root=NOWHERE"]])
def test_rejected_configs_leave_no_run_folder(extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["train", "--model", "resnet18", "--no-progress", *[a.replace("NOWHERE", str(tmp_path / "none")) for a in extra]]
    assert cli.main([*argv, "--results", str(tmp_path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _record(root: Path, finished: bool = True) -> tuple[RunConfig, Path]:
    """A run folder in the engine's layout, written by hand (finished: with metrics.json)."""
    cfg = RunConfig(dataset="fer2013", model="daf_mhsca", profile="smoke", seed=0)
    run_dir = root / "runs" / cfg.id
    (run_dir / "checkpoints").mkdir(parents=True)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    meta = {"id": cfg.id, "config": cfg.to_dict(), "plan": cfg.plan.to_dict(), "data": {"name": "synthetic", "classes": classes, "synthetic": True}}
    (run_dir / "config.json").write_text(json.dumps(meta))
    if finished:
        (run_dir / "metrics.json").write_text(json.dumps({"last": None, "best_val": None, "best_test": None}))
    return cfg, run_dir


def test_deleted_metrics_of_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg, run_dir = _record(tmp_path, finished=False)
    history = "".join(json.dumps({"epoch": e}) + "\n" for e in range(1, cfg.plan.epochs + 1))
    (run_dir / "history.jsonl").write_text(history)
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    assert cli.main(["eval", "--run", cfg.id, "--results", str(tmp_path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert f"holds all {cfg.plan.epochs} epochs: the run finished. Restore metrics.json" in line
    with pytest.raises(ConfigError, match="the run finished"):
        get_run(cfg, root=tmp_path)  # not retrained over its history
    assert (run_dir / "history.jsonl").read_text() == history
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before


# ---- 9. no import circles in fer_lib, counting imports inside functions -----------------------------

def import_graph() -> dict[str, set[str]]:
    """fer_lib module -> the fer_lib modules it imports anywhere (also by a module name in a string, as importlib does)."""
    files = {".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (PROJECT_ROOT / "fer_lib").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
        graph[name] = {m for m in found if m in files and m != name and m.startswith("fer_lib.")}
    return graph


def test_no_import_circles() -> None:
    graph = import_graph()
    assert "fer_lib.predict" in graph["fer_lib.cli"] and "fer_lib.commands" in graph["fer_lib.predict"]  # the graph sees them

    def circle(start: str, node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                return path + [nxt]
            if nxt not in path and nxt > start:  # each circle found once, from its smallest module
                found = circle(start, nxt, path + [nxt])
                if found:
                    return found
        return None

    circles = [c for m in sorted(graph) if (c := circle(m, m, [m]))]
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


# ---- 10. crafted pickles as checkpoints do not run --------------------------------------------------

class Payload:
    """Pickles to a call of exec that writes ``marker``: what an attacker would put in a .pt file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def plant(path: Path, marker: Path) -> bytes:
    torch.save({"model": Payload(marker)}, path)
    torch.load(path, weights_only=False)  # proof the payload is live: an unsafe load runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    return path.read_bytes()


def test_crafted_best_val_is_refused_by_load_model_and_predict(tmp_path: Path, astronaut: Path, capsys: pytest.CaptureFixture) -> None:
    cfg, run_dir = _record(tmp_path)
    ckpt, marker = run_dir / "checkpoints" / "best_val.pt", tmp_path / "marker"
    planted = plant(ckpt, marker)
    with pytest.raises(ConfigError) as err:
        load_model(load_record(run_dir))
    assert str(err.value).startswith(f"{ckpt} is not a loadable checkpoint") and "\n" not in str(err.value)
    assert cli.main(["predict", str(astronaut), "--run", cfg.id, "--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {ckpt} is not a loadable checkpoint")
    assert not marker.exists() and ckpt.read_bytes() == planted


def test_crafted_last_is_refused_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = RunConfig(dataset="fer2013", model="resnet18", profile="smoke", seed=0)
    run_dir = tmp_path / "runs" / cfg.id
    (run_dir / "checkpoints").mkdir(parents=True)
    last, marker = run_dir / "checkpoints" / "last.pt", tmp_path / "marker"
    planted = plant(last, marker)
    with pytest.raises(ConfigError) as err:
        get_run(cfg, root=tmp_path, progress=False)
    assert str(err.value).startswith(f"{last} cannot be resumed") and "\n" not in str(err.value)
    assert cli.main(["train", "--model", "resnet18", "--no-progress", "--results", str(tmp_path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {last} cannot be resumed")
    assert not marker.exists() and last.read_bytes() == planted
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "history.jsonl").exists()
