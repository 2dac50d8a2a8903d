"""fer_lib: a reproduction of DAF-MHSCA (Shao, Li and Wu, 2025) for facial expression recognition."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "results"
