"""Training precision: bfloat16 autocast with channels_last where the device has native bfloat16, else fp32."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fer_lib.engine.recipes import ConfigError

AUTO_ENV = "FER_AUTO_PRECISION"  # fp32 or bf16: what ``auto`` resolves to on this machine (docs/cpu_study.md)


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bfloat16 (avx512_bf16 or AMX), so autocast to it pays."""
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None:
            return bool(check())
    except RuntimeError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str | None]:
    """(precision used, note or None) for a plan's ``precision`` on ``device``.

    ``auto`` is bf16 autocast (with channels_last) on CUDA and on CPUs with native bfloat16, fp32 elsewhere;
    ``$FER_AUTO_PRECISION`` (fp32 or bf16) sets it instead, so that a study started in one precision stays
    in it on other machines (the run id holds ``auto``; env.json the precision used and this note)."""
    if requested == "fp32":
        return "fp32", None
    if requested == "auto" and os.environ.get(AUTO_ENV):
        chosen = os.environ[AUTO_ENV]
        if chosen not in ("fp32", "bf16"):
            raise ConfigError(f"${AUTO_ENV} must be fp32 or bf16, not {chosen!r}; unset it to let auto choose")
        note = f"precision auto: ${AUTO_ENV}={chosen}"
        emulated = resolve_precision(chosen, device)[1]
        return chosen, note + (f"; {emulated}" if emulated else "")
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    if native:
        return "bf16", None
    if requested == "bf16":
        return "bf16", f"bf16 asked for, but {device.type} has no native bfloat16: emulated, slower than fp32"
    return "fp32", f"precision auto: {device.type} has no native bfloat16, training in fp32"
