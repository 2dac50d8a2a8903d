"""Images per second delivered by the cached on-device pipeline against a PIL + ImageFolder + DataLoader one.

Both deliver augmented, normalised training batches at 112 and 224 px from the same faces (real
FER2013 if present, else the built-in SYNTHETIC faces). The reference pipeline is DAN's and DDAMFN's:
JPEG files read by PIL through torchvision's ImageFolder, transformed per image, batched by a
DataLoader with worker processes. For scale, a training step of a model (ResNet18 by default) on the
same device shows what the model can consume.

    python scripts/bench_data.py                  # prints a table (about a minute on 2 CPU cores)
    python scripts/bench_data.py --write-docs     # also writes it into docs/data.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fer_lib import PROJECT_ROOT  # noqa: E402
from fer_lib.data import DatasetError, FaceData, load_dataset  # noqa: E402
from fer_lib.data.pipeline import Augment  # noqa: E402
from fer_lib.models import InputSpec, build_model  # noqa: E402

DOCS = PROJECT_ROOT / "docs" / "data.md"
START, END = "<!-- bench_data:start -->", "<!-- bench_data:end -->"


def source_faces() -> tuple[FaceData, str]:
    try:
        return load_dataset("fer2013"), "FER2013 (48 px grey)"
    except DatasetError:
        return load_dataset("synthetic", per_class=(100, 0, 0)), "SYNTHETIC faces (64 px colour; no FER2013 found)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_cached(data: FaceData, size: int, device: torch.device, batch: int, seconds: float) -> float:
    """Cached pipeline: uint8 faces on the device, Augment(train) per batch."""
    images = data.images.to(device)
    augment = Augment(InputSpec(size, 3), train=True).to(device)
    idx = torch.randperm(len(images), device=device)
    augment(images[idx[:batch]])  # warm-up
    sync(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rows = idx[torch.randint(0, len(idx) - batch, (1,)).item():][:batch]
        out = augment(images[rows])
        done += len(out)
        sync(device)
    return done / (time.perf_counter() - start)


def write_jpegs(data: FaceData, folder: Path, count: int) -> None:
    """``count`` faces as JPEG files in ImageFolder layout (folder/<class>/<n>.jpg)."""
    for n in range(count):
        arr = data.images[n].permute(1, 2, 0).squeeze(-1).numpy()
        path = folder / data.classes[int(data.labels[n])] / f"{n}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, quality=95)


def bench_imagefolder(folder: Path, size: int, batch: int, workers: int, seconds: float) -> float:
    """DAN / DDAMFN's pipeline: ImageFolder + per-image torchvision transforms + DataLoader workers."""
    pad = round(32 * size / 224)
    tf = transforms.Compose([
        transforms.Resize((size, size)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.RandomRotation(20), transforms.RandomCrop(size, padding=pad)], p=0.2),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        transforms.RandomErasing(scale=(0.02, 0.25)),
    ])
    loader = DataLoader(datasets.ImageFolder(str(folder), tf), batch_size=batch, shuffle=True, num_workers=workers,
                        drop_last=True, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # worker start-up is not counted
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        done += len(x)
    return done / (time.perf_counter() - start)


def bench_model(name: str, size: int, device: torch.device, batch: int, steps: int) -> float:
    """Training images/s of a model step (forward, CE loss, backward, Adam) at ``size`` px."""
    model = build_model(name, num_classes=7).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 7, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(x).logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    ap.add_argument("--jpegs", type=int, default=512, help="faces written as JPEG files for the ImageFolder pipeline")
    ap.add_argument("--batch", type=int, default=256, help="batch of the cached pipeline (Table 2: 256)")
    ap.add_argument("--loader-batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per pipeline and size")
    ap.add_argument("--model", default="resnet18", help="model whose training step is timed for scale ('none' skips)")
    ap.add_argument("--model-batch", type=int, default=None, help="default: 64 on a GPU, 8 on a CPU")
    ap.add_argument("--model-steps", type=int, default=None, help="default: 10 on a GPU, 2 on a CPU")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                    help="torch threads of the main process, one table row per value (default: torch's)")
    ap.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS.relative_to(PROJECT_ROOT)}")
    args = ap.parse_args()

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.model_batch = args.model_batch or (64 if gpu else 8)
    args.model_steps = args.model_steps or (10 if gpu else 2)
    data, what = source_faces()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(data, Path(tmp), args.jpegs)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for size in args.sizes:
                cached = bench_cached(data, size, device, args.batch, args.seconds)
                folder = bench_imagefolder(Path(tmp), size, args.loader_batch, args.workers, args.seconds)
                model = bench_model(args.model, size, device, args.model_batch, args.model_steps) if args.model != "none" else None
                rows.append((threads, size, cached, folder, model))
                print(f"{threads} thread(s), {size} px: cached+Augment {cached:,.0f} img/s | ImageFolder+DataLoader "
                      f"{folder:,.0f} img/s ({cached / folder:.1f}x)" + (f" | {args.model} training step {model:,.0f} img/s" if model else ""),
                      flush=True)

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    lines = [
        f"Measured by `python scripts/bench_data.py` on {time.strftime('%Y-%m-%d')}: {dev_name}, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} at the end; faces: {what}. Cached: batch {args.batch} on {device.type}; "
        f"ImageFolder: {args.jpegs} JPEGs, batch {args.loader_batch}, {args.workers} workers. Both with DAN's augmentations "
        "(flip, rotation + crop, erasing); ours adds contrast, grayscale and noise.",
        "",
        "| main-process threads | size | cached + Augment (img/s) | PIL + ImageFolder + DataLoader (img/s) | ratio |"
        + (f" {args.model} training step (img/s) |" if args.model != "none" else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|" if args.model != "none" else ""),
    ]
    for threads, size, cached, folder, model in rows:
        lines.append(f"| {threads} | {size} | {cached:,.0f} | {folder:,.0f} | {cached / folder:.1f}x |" + (f" {model:,.0f} |" if model else ""))
    table = "\n".join(lines)
    print()
    print(table)
    if args.write_docs:
        text = DOCS.read_text()
        if START not in text or END not in text:
            raise SystemExit(f"{DOCS}: markers {START} / {END} not found")
        head, rest = text.split(START, 1)
        DOCS.write_text(head + START + "\n" + table + "\n" + END + rest.split(END, 1)[1])
        print(f"written into {DOCS}")


if __name__ == "__main__":
    main()
