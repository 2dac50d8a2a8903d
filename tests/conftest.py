"""Shared pytest set-up: small thread count (CI has 2 cores), a fixed seed per test, and scripts/ as modules."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from fer_lib import PROJECT_ROOT

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def script() -> Callable[[str], ModuleType]:
    """``script("readme_summary")``: scripts/readme_summary.py loaded as a module (scripts/ is not a package)."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def write_notebook() -> Callable[[Path, str], None]:
    """Write a one-cell report notebook (markdown title, the report's parameters cell, then ``code``)."""
    import nbformat

    def write(path: Path, code: str) -> None:
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('profile = "smoke"\ndatasets = None\nseeds = None\ndevice = ""\noutput_dir = ""\nplan = ""\nno_train = False')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(code)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, str(path))

    return write
