"""Training precision: bfloat16 autocast with channels_last where the device has native bfloat16, else fp32."""

from __future__ import annotations

from pathlib import Path

import torch


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

    ``auto`` is bf16 autocast (with channels_last) on CUDA and on CPUs with native bfloat16, fp32 elsewhere."""
    if requested == "fp32":
        return "fp32", None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    if native:
        return "bf16", None
    if requested == "bf16":
        return "bf16", f"bf16 asked for, but {device.type} has no native bfloat16: emulated, slower than fp32"
    return "fp32", f"precision auto: {device.type} has no native bfloat16, training in fp32"
