#!/usr/bin/env python
"""SmallMapConv2d's backward against two candidate replacements, paired on each layer shape of the cpu profile.

    .venv/bin/python scripts/bench_small_map.py            # 1 thread, bf16 autocast, batch 128
    .venv/bin/python scripts/bench_small_map.py --threads 2 --pairs 12
    .venv/bin/python scripts/bench_small_map.py --threads 2 --step   # whole training steps of the cpu profile's model

The library's gather (``padded[:, index]``) has an index-add as its backward, 14 % of a bf16 step on the
AVX-512 EPYC (docs/cpu_study.md). The candidates compute the same function: ``slices`` builds the taps from
kh x kw strided slices stacked (autograd sums kh x kw zero-padded copies), ``shifted`` copies the taps
out as the gather does, with a backward of kh x kw strided in-place adds. Each pair times the library and one
candidate back to back (forward and backward); the ratio is the median over pairs after the first.
``--step`` pairs whole training steps instead (the cpu profile's DAF-MHSCA, criterion and AdamW), the library's
layers against the same model with every SmallMapConv2d turned into the ``shifted`` candidate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib.models.layers import SmallMapConv2d  # noqa: E402
from scripts.bench_precision import make_step  # noqa: E402

# (in, out, input map, kernel, stride) of the convolutions that take the gather path at 72 px
SHAPES = [(128, 128, 9, 3, 1), (128, 256, 9, 3, 2), (256, 256, 5, 3, 1), (256, 512, 5, 3, 2),
          (512, 512, 3, 3, 1), (512, 512, 3, 1, 1)]


def geometry(conv: SmallMapConv2d, x: torch.Tensor) -> tuple[int, ...]:
    """(ho, wo, kh, kw, sh, sw, dh, dw) of ``conv`` on ``x``."""
    return (*conv.output_size(x.shape[2], x.shape[3]), *conv.kernel_size, *conv.stride, *conv.dilation)


def tap(padded: torch.Tensor, i: int, j: int, g: tuple[int, ...]) -> torch.Tensor:
    """The strided slice of ``padded`` (B x Hp x Wp x C) that kernel tap (i, j) reads: B x ho x wo x C."""
    ho, wo, _, _, sh, sw, dh, dw = g
    return padded[:, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]


def stacked_taps(padded: torch.Tensor, g: tuple[int, ...]) -> torch.Tensor:
    """Every kernel tap's slice of ``padded``, stacked: B x ho x wo x (kh kw) x C, the gather's taps."""
    return torch.stack([tap(padded, i, j, g) for i in range(g[2]) for j in range(g[3])], dim=3)


class ShiftedTaps(torch.autograd.Function):
    """The taps copied out of the padded map (what the gather computes); the backward adds each tap's gradient
    back with one strided in-place add instead of an index-add."""

    @staticmethod
    def forward(ctx, padded: torch.Tensor, g: tuple[int, ...]) -> torch.Tensor:
        ctx.g, ctx.shape = g, padded.shape
        return stacked_taps(padded, g)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g = ctx.g
        out = grad.new_zeros(ctx.shape)
        for k in range(g[2] * g[3]):
            tap(out, k // g[3], k % g[3], g).add_(grad[:, :, :, k])
        return out, None


class Candidate(SmallMapConv2d):
    """SmallMapConv2d with its taps built by ``mode``: "slices" or "shifted"."""

    mode = "slices"

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b = x.shape[0]
        g = geometry(self, x)
        (ph, pw) = self.padding
        padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # B x Hp x Wp x C
        taps = ShiftedTaps.apply(padded, g) if self.mode == "shifted" else stacked_taps(padded, g)
        out = taps.reshape(b, g[0] * g[1], -1) @ weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t()
        if bias is not None:
            out = out + bias
        return out.permute(0, 2, 1).reshape(b, -1, g[0], g[1])


def seconds(conv: torch.nn.Module, x: torch.Tensor) -> float:
    """One forward and backward of ``conv`` on ``x`` under bf16 autocast."""
    x = x.clone().requires_grad_()
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    return time.perf_counter() - t0


def to_shifted(model: torch.nn.Module) -> None:
    """Turn every SmallMapConv2d of ``model`` into the ``shifted`` candidate, in place."""
    for m in model.modules():
        if type(m) is SmallMapConv2d:
            m.__class__, m.mode = Candidate, "shifted"


def step_ratio(batch_size: int, pairs: int, image_size: int = 72) -> tuple[float, float]:
    """(median library step in s, median shifted / library) over ``pairs`` paired training steps after a
    warm-up pair: DAF-MHSCA (head_gate channel_sum) at ``image_size``, bf16 autocast, channels_last, AdamW
    (``bench_precision.make_step``)."""
    sides = [make_step("daf_mhsca", {"head_gate": "channel_sum"}, image_size, batch_size, True, torch.device("cpu"), convert)
             for convert in (None, to_shifted)]
    times = [[step() for step in sides] for _ in range(pairs + 1)][1:]
    return statistics.median(t[0] for t in times), statistics.median(t[1] / t[0] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--step", action="store_true", help="pair whole training steps of the cpu profile's model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.step:
        base, ratio = step_ratio(args.batch_size, args.pairs)
        print(f"training step, batch {args.batch_size}, {args.threads} thread(s), bf16: library {base:.2f} s "
              f"({args.batch_size / base:.0f} img/s); shifted / library {ratio:.3f} (median of {args.pairs} pairs)")
        return
    torch.manual_seed(0)
    for cin, cout, size, k, stride in SHAPES:
        base = SmallMapConv2d(cin, cout, k, stride, k // 2, bias=False)
        x = torch.randn(args.batch_size, cin, size, size).to(memory_format=torch.channels_last)
        cells = []
        for mode in ("slices", "shifted"):
            other = Candidate(cin, cout, k, stride, k // 2, bias=False)
            other.mode = mode
            other.load_state_dict(base.state_dict())
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            ya, yb = base(xa), other(xb)
            ya.backward(torch.ones_like(ya))
            yb.backward(torch.ones_like(yb))
            assert torch.allclose(ya, yb, atol=1e-5) and torch.allclose(xa.grad, xb.grad, atol=1e-4), mode
            pairs = [(seconds(base, x), seconds(other, x)) for _ in range(args.pairs + 1)][1:]
            cells.append(f"{mode} {statistics.median(o / b for b, o in pairs):.2f}x")
        base_ms = 1e3 * statistics.median(seconds(base, x) for _ in range(3))
        print(f"{cin:>3} -> {cout:>3}, {size} x {size}, k{k} s{stride}: library {base_ms:6.1f} ms; "
              f"candidate time / library: {', '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
