#!/usr/bin/env python
"""Screenshots of a built report's pages in headless Chromium, as small PNGs for the docs.

    .venv/bin/python scripts/screenshots.py results/report/cpu [--out docs/screenshots]

Needs Chromium (Debian: ``apt-get install chromium``). Each page is drawn at 1200 px wide, cut to its
first ``--height`` pixels and reduced to a 64-colour palette, so that each file stays small.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib import PROJECT_ROOT  # noqa: E402

PAGES = {"index": "index", "02_table4_ablations": "table4", "06_fig7_attention": "figure7", "11_walkthrough": "walkthrough"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def shoot(browser: str, page: Path, png: Path, width: int, height: int) -> None:
    """One page to ``png`` (palette PNG, ``width`` x ``height``)."""
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "raw.png"
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={raw}", page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
        Image.open(raw).convert("RGB").quantize(64).save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a built report folder (holds index.html)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: install it (Debian: apt-get install chromium) and run again")
    if not (args.report / "index.html").is_file():
        raise SystemExit(f"{args.report} holds no built report (index.html): build one with ./run_all.sh first")
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, name in PAGES.items():
        png = args.out / f"{name}.png"
        shoot(browser, args.report / f"{stem}.html", png, args.width, args.height)
        print(f"{png}: {png.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
