"""Run a trained model on ordinary photos: ``python -m fer_lib predict PHOTO... [--run ID | --weights FILE]``.

Faces are found with OpenCV's bundled Haar cascade, levelled on the eyes when both are found,
cropped with a margin, turned grey and shrunk to 48 x 48 when the model was trained on FER2013 /
FERPlus (grey 48 px crops; other datasets keep colour), then passed through the engine's evaluation transform. Per photo:
a row per face in ``predictions.csv``, an entry in ``predictions.json`` and ``<photo>_overlay.png``
(box, label and the attention map). Faces are listed largest first; detections far smaller than
the largest (:data:`MIN_FACE_RATIO`) are dropped. A bad photo (missing, a folder, empty, unreadable,
truncated, a decompression bomb, no face) is reported in one line and skipped; the exit status is
non-zero only if no photo could be processed (or the model could not be loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from fer_lib.commands import CHECKPOINT_CHOICES, check_device, subcommand
from fer_lib.data.images import ImageProblem, load_image
from fer_lib.models import InputSpec

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
MARGIN = 0.10  # FER2013 crops run from brow to chin with little around them: the Haar box widened by 10% per side (matched by eye)
# Detections whose side is under this share of the largest one's are dropped: faces far in the
# background, and the Haar cascade's small false hits (ears, buttons, textures).
MIN_FACE_RATIO = 0.35


class PredictError(RuntimeError):
    """The model cannot be loaded (no run, no checkpoint, missing weights): nothing can be predicted."""


class PhotoError(RuntimeError):
    """One photo cannot be used (unreadable, or no face found); the batch goes on."""


# ---------------------------------------------------------------- the model


@dataclass
class Predictor:
    """A model ready for photos: how to prepare faces for it and how to name its classes."""

    model: nn.Module
    spec: InputSpec
    classes: tuple[str, ...]
    grey: bool
    source_size: int | None  # side the training faces had before the engine resized them
    source: str  # the run id or weights file, for the outputs


def _dataset_format(dataset: str) -> tuple[bool, int | None]:
    """(grey, stored side) of a dataset's faces (FER2013 and FERPlus: grey 48 x 48 crops); RGB goes straight to the model size."""
    from fer_lib.data import dataset_info

    info = dataset_info(dataset)
    grey = bool(info and info.grey)
    return grey, info.stored_side if grey else None


def from_run(run: str, results: str | os.PathLike | None = None, which: str = "best_val", device: str = "cpu") -> Predictor:
    """A finished run (id or folder) with its checkpoint; raises :class:`PredictError` with what to do otherwise."""
    from fer_lib.engine import load_model, load_record, runs_dir

    path = Path(run) if Path(run).is_dir() else runs_dir(results) / run
    record = load_record(path)
    if record is None:
        raise PredictError(f"no finished run {run!r} (looked in {path}); list runs with `ls {runs_dir(results)}` "
                           "or train one with `python -m fer_lib train`")
    try:
        model, spec = load_model(record, which=which, device=device)
    except FileNotFoundError as err:
        raise PredictError(f"run {record.id} has no checkpoint: {err}") from err
    grey, size = _dataset_format(record.plan["dataset"])
    return Predictor(model, spec, tuple(record.classes), grey, size, record.id)


def from_weights(weights: str | os.PathLike, model: str = "daf_mhsca", dataset: str = "fer2013", image_size: int | None = None,
                 model_options: dict[str, Any] | None = None, classes: Sequence[str] | None = None, device: str = "cpu") -> Predictor:
    """A checkpoint file saved by the engine (``{"model": state_dict, ...}``) or a bare state dict.

    A checkpoint inside a run folder (``runs/<id>/checkpoints/*.pt``) takes model, options, size and
    classes from its run; otherwise they come from the arguments (``dataset`` names the classes and
    whether faces are grey).
    """
    from fer_lib.data import dataset_info
    from fer_lib.engine.recipes import DEFAULT_NUM_CLASSES
    from fer_lib.models import build_model

    path = Path(weights)
    if not path.is_file():
        raise PredictError(f"weights file not found: {path}")
    run_dir = path.parent.parent
    if path.parent.name == "checkpoints" and (run_dir / "config.json").is_file():
        meta = json.loads((run_dir / "config.json").read_text())
        model, dataset = meta["config"]["model"], meta["plan"]["dataset"]
        image_size, model_options = meta["plan"]["image_size"], meta["config"]["model_options"]
        classes = meta["data"]["classes"]
    if classes is None:
        info = dataset_info(dataset)
        classes = (info.classes if info else None) or tuple(f"class_{i}" for i in range(DEFAULT_NUM_CLASSES))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, a truncated one, or a pickle holding code
        raise PredictError(f"{path} is not a torch checkpoint that loads as weights only ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:200]}); pass a .pt file saved by the engine or a state dict") from None
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise PredictError(f"{path} holds neither an engine checkpoint nor a state dict")
    options = dict(model_options or {})
    if image_size is not None:
        options["image_size"] = image_size
    try:
        net = build_model(model, len(classes), **options)
    except (KeyError, ValueError, TypeError) as err:  # an unknown model, or options it does not take
        raise PredictError(f"--model {model!r} with options {options}: {err.args[0] if err.args else err}") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise PredictError(f"{path} does not fit model {model!r} with {len(classes)} classes and options {options}: "
                           f"{str(err).splitlines()[0]} (set --model, --image-size, -m and --dataset as in training)") from err
    grey, size = _dataset_format(dataset)
    return Predictor(net.to(device).eval(), net.input_spec, tuple(classes), grey, size, str(path))


# ---------------------------------------------------------------- faces


def cascade(name: str = FACE_CASCADE) -> Any:
    """One of OpenCV's bundled Haar cascades (opencv-python-headless 4.x ships them; 5.x does not)."""
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / name
    if not folder or not path.is_file():
        raise PredictError(f"OpenCV {cv2.__version__} has no bundled {name}: install opencv-python-headless<5")
    return cv2.CascadeClassifier(str(path))


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """An RGB uint8 H x W x 3 image, turned upright by its EXIF orientation; raises :class:`PhotoError`
    for a missing, unreadable, empty or truncated file, a folder or a decompression bomb."""
    try:
        return np.asarray(load_image(path, "RGB", orient=True))
    except FileNotFoundError:
        raise PhotoError(f"{path}: file not found") from None
    except ImageProblem as err:
        raise PhotoError(f"{path}: {err}") from None


@dataclass
class Face:
    """A face found in a photo: its box (x, y, w, h in the photo), the aligned crop and the rotation used."""

    box: tuple[int, int, int, int]
    crop: np.ndarray  # RGB uint8, square
    matrix: np.ndarray  # 2 x 3 affine map from the photo to the levelled photo the crop was cut from
    square: tuple[int, int, int]  # (x0, y0, side) of the crop in the levelled photo
    angle: float = 0.0


def _eye_angle(grey: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Degrees to rotate so that the two eyes are level; 0 when two eyes are not found in the upper half."""
    x, y, w, h = box
    upper = grey[y : y + h // 2, x : x + w]
    eyes = cascade(EYE_CASCADE).detectMultiScale(upper, 1.1, 5, minSize=(max(8, w // 10), max(8, w // 10)))
    if len(eyes) < 2:
        return 0.0
    eyes = sorted(eyes, key=lambda e: -e[2] * e[3])[:2]
    (ax, ay, aw, ah), (bx, by, bw, bh) = sorted(eyes, key=lambda e: e[0])
    dx, dy = (bx + bw / 2) - (ax + aw / 2), (by + bh / 2) - (ay + ah / 2)
    angle = float(np.degrees(np.arctan2(dy, dx)))
    return angle if abs(angle) <= 30 and dx > w / 5 else 0.0  # anything else is not a pair of eyes


def rank_boxes(boxes: Any, min_ratio: float = MIN_FACE_RATIO) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) boxes largest first (ties left to right), without those whose side is under
    ``min_ratio`` x the largest one's."""
    ranked = sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: (-max(b[2], b[3]), b[0], b[1]))
    if not ranked:
        return []
    largest = max(ranked[0][2], ranked[0][3])
    return [b for b in ranked if max(b[2], b[3]) >= min_ratio * largest]


def crop_faces(rgb: np.ndarray, margin: float = MARGIN, align: bool = True, min_size: int = 30) -> list[Face]:
    """The frontal faces in an RGB photo (largest first, see :func:`rank_boxes`), levelled on the eyes
    (``align``) and cut as squares with ``margin``."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    boxes = cascade().detectMultiScale(cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    faces = []
    for x, y, w, h in rank_boxes(boxes):
        angle = _eye_angle(grey, (x, y, w, h)) if align else 0.0
        centre = (x + w / 2, y + h / 2)
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        level = cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) if angle else rgb
        side = int(round(max(w, h) * (1 + 2 * margin)))
        x0, y0 = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
        pad = side  # enough border for a box at the photo's edge
        padded = cv2.copyMakeBorder(level, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        crop = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side].copy()
        faces.append(Face((x, y, w, h), crop, matrix, (x0, y0, side), angle))
    return faces


def prepare(crop: np.ndarray, predictor: Predictor) -> torch.Tensor:
    """A face crop -> uint8 1 x C x H x W as the training faces were (grey 48 px for FER2013 / FERPlus)."""
    import cv2

    img = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None] if predictor.grey else crop
    side = predictor.source_size or predictor.spec.size
    img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA if img.shape[0] > side else cv2.INTER_LINEAR)
    if img.ndim == 2:
        img = img[..., None]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


# ---------------------------------------------------------------- predicting


@dataclass
class PhotoResult:
    path: str
    faces: list[dict[str, Any]] = field(default_factory=list)
    overlay: str | None = None
    attention: str | None = None  # which map the overlay shows ("heads mean", "A_s"), None if the model has none
    error: str | None = None


def _overlay(rgb: np.ndarray, faces: list[Face], rows: list[dict[str, Any]], maps: list[np.ndarray | None]) -> np.ndarray:
    """The photo with each face's attention map (laid back through the inverse rotation), box and label."""
    import cv2

    canvas = rgb.astype(np.float32)
    h, w = rgb.shape[:2]
    for face, m in zip(faces, maps):
        if m is None:
            continue
        x0, y0, side = face.square
        heat = cv2.resize(m.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        heat = (heat - heat.min()) / max(float(np.ptp(heat)), 1e-8)
        level_heat, level_mask = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        xs, ys = slice(max(x0, 0), min(x0 + side, w)), slice(max(y0, 0), min(y0 + side, h))
        level_heat[ys, xs] = heat[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        level_mask[ys, xs] = 1
        back = cv2.invertAffineTransform(face.matrix)
        heat_p = cv2.warpAffine(level_heat, back, (w, h))
        mask_p = cv2.warpAffine(level_mask, back, (w, h))[..., None] * 0.45
        colour = cv2.cvtColor(cv2.applyColorMap((heat_p * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        canvas = canvas * (1 - mask_p) + colour.astype(np.float32) * mask_p
    out = canvas.clip(0, 255).astype(np.uint8)
    scale = max(0.4, min(h, w) / 800)
    for face, row in zip(faces, rows):
        x, y, bw, bh = face.box
        cv2.rectangle(out, (x, y), (x + bw, y + bh), (0, 255, 0), max(1, int(2 * scale)))
        text = f"{row['face']}: {row['predicted']} {row['probability']:.2f}"
        cv2.putText(out, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), max(1, int(2 * scale)), cv2.LINE_AA)
    return out


@torch.no_grad()
def predict_photo(predictor: Predictor, path: str | os.PathLike, out_dir: Path | None = None, overlay_name: str | None = None) -> PhotoResult:
    """Faces and class probabilities of one photo; writes its overlay PNG into ``out_dir`` when given.

    Raises :class:`PhotoError` for an unreadable photo or one without a face.
    """
    import cv2

    from fer_lib.engine.inputs import model_input
    from fer_lib.explain import attention_maps

    rgb = read_photo(path)
    faces = crop_faces(rgb)
    if not faces:
        raise PhotoError(f"{path}: no face found (OpenCV Haar cascade, frontal faces of 30 px or more)")
    batch = torch.cat([prepare(f.crop, predictor) for f in faces])
    out = predictor.model(model_input(batch, predictor.spec))
    probs = out.logits.float().softmax(dim=1).numpy()
    maps_all = attention_maps(out)
    kind = "heads mean" if "heads mean" in maps_all else ("A_s" if "A_s" in maps_all else None)
    maps = [None if kind is None else maps_all[kind][i].numpy() for i in range(len(faces))]
    rows = []
    for i, (face, p) in enumerate(zip(faces, probs)):
        x, y, w, h = face.box
        rows.append({"face": i, "x": x, "y": y, "w": w, "h": h, "eye_angle": round(face.angle, 2),
                     "predicted": predictor.classes[int(p.argmax())], "probability": float(p.max()),
                     **{f"p_{c}": float(v) for c, v in zip(predictor.classes, p)}})
    result = PhotoResult(str(path), rows, attention=kind)
    if out_dir is not None:
        target = out_dir / (overlay_name or f"{Path(path).stem}_overlay.png")
        image = _overlay(rgb, faces, rows, maps)
        if not cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise PhotoError(f"{path}: cannot write {target}")
        result.overlay = str(target)
    return result


def predict_photos(predictor: Predictor, paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   say: Any = print) -> list[PhotoResult]:
    """Every photo in turn (a bad one is reported and skipped); writes predictions.csv / .json and the overlays."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[PhotoResult] = []
    used: set[str] = set()
    for path in paths:
        stem = Path(path).stem
        name, k = f"{stem}_overlay.png", 2
        while name in used:  # two photos with one name in different folders
            name, k = f"{stem}_{k}_overlay.png", k + 1
        try:
            res = predict_photo(predictor, path, out, name)
            used.add(name)
            say(f"{path}: {len(res.faces)} face(s): " + ", ".join(f"{r['predicted']} {r['probability']:.2f}" for r in res.faces))
        except PhotoError as err:
            res = PhotoResult(str(path), error=str(err))
            say(f"skipped {err}")
        results.append(res)
    table = [{"photo": r.path, **row} for r in results for row in r.faces]
    columns = ["photo", "face", "x", "y", "w", "h", "eye_angle", "predicted", "probability"] + [f"p_{c}" for c in predictor.classes]
    pd.DataFrame(table, columns=columns).to_csv(out / "predictions.csv", index=False)
    doc = {
        "model": predictor.source,
        "classes": list(predictor.classes),
        "preprocessing": f"Haar face box + {MARGIN:.0%} margin, eye levelling, "
                         + (f"grey {predictor.source_size} px" if predictor.grey else "RGB")
                         + f", model input {predictor.spec.size} px",
        "photos": [{"photo": r.path, "faces": r.faces, "overlay": r.overlay, "attention": r.attention, "error": r.error}
                   for r in results],
    }
    (out / "predictions.json").write_text(json.dumps(doc, indent=1) + "\n")
    return results


# ---------------------------------------------------------------- command line


@subcommand("predict", "find faces in photos and predict their expressions with a trained run or weights file")
def configure(parser: argparse.ArgumentParser) -> Any:
    """Arguments of ``python -m fer_lib predict``; returns the handler."""
    parser.add_argument("photos", nargs="+", help="image files (jpg, png, ...)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", help="a finished run's id or folder (its best_val checkpoint)")
    source.add_argument("--weights", help="a checkpoint file saved by the engine, or a state dict")
    parser.add_argument("--which", default="best_val", choices=CHECKPOINT_CHOICES, help="with --run: best_val or last")
    parser.add_argument("--model", default="daf_mhsca", help="with --weights: the model name")
    parser.add_argument("--dataset", default="fer2013", help="with --weights: the training dataset (class names, grey or colour)")
    parser.add_argument("--image-size", type=int, default=None, help="with --weights: the model's input side")
    parser.add_argument("--model-option", "-m", action="append", metavar="KEY=VALUE", help="with --weights: model option as in training")
    parser.add_argument("--classes", default=None, help="with --weights: comma-separated class names (default: the dataset's)")
    parser.add_argument("--results", default=None, help="results folder holding runs/ (default $FER_RESULTS or results/)")
    parser.add_argument("--out", default="predictions", help="output folder (default ./predictions)")
    parser.add_argument("--device", default="cpu")
    return main


def _options(items: Sequence[str] | None) -> dict[str, Any]:
    """``-m KEY=VALUE`` pairs; values read as JSON when they parse (``4``, ``false``), else kept as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise PredictError(f"--model-option expects KEY=VALUE, not {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def load_predictor(args: argparse.Namespace) -> Predictor:
    """The model named on the command line (``--run`` or ``--weights``); raises :class:`PredictError`."""
    if args.run:
        return from_run(args.run, args.results, args.which, args.device)
    if args.weights:
        classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
        return from_weights(args.weights, args.model, args.dataset, args.image_size, _options(args.model_option),
                            classes, args.device)
    raise PredictError("no model given: pass --run ID (a trained run) or --weights FILE")


def main(args: argparse.Namespace) -> int:
    """The predict command: 0 if at least one photo was processed, 1 if every photo failed.

    No model (or a bad ``--device``) raises :class:`PredictError` / ConfigError: fer_lib.cli reports it (status 2)."""
    check_device(args.device)
    predictor = load_predictor(args)
    cascade()
    results = predict_photos(predictor, args.photos, args.out, say=lambda s: print(s, file=sys.stderr if s.startswith("skipped") else sys.stdout))
    ok = sum(r.error is None for r in results)
    print(f"{ok} of {len(results)} photo(s) processed; outputs in {args.out}/ (predictions.csv, predictions.json, *_overlay.png)")
    return 0 if ok else 1
