"""DAF-MHSCA (Shao, Li and Wu 2025): ResNet18 -> AFC -> DAF -> MHSCA -> classifier.

Section 2 of the paper, one module per block, each equation named where it is computed:
- :class:`AFC`, adaptive feature calibration, Eq. 1-3 and Algorithm 1;
- :class:`DAF`, directional attention fusion, Eq. 4-8 and Algorithm 2;
- :class:`SpatialChannelHead` and :class:`MHSCA`, multi-head spatial-channel attention, Eq. 9-13
  and Algorithm 3.
Where the paper is vague the reading is stated in a one-line comment and, when two readings are
defensible, offered as a constructor switch (see docs/model.md).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fer_lib.models import InputSpec, ModelOutput, register_model
from fer_lib.models.backbone import build_trunk
from fer_lib.models.layers import sigmoid32


def feature_size(image_size: int) -> int:
    """Side of x_F for a square input: ResNet18 halves it (rounding up) five times, 224 -> 7, 112 -> 4."""
    side = image_size
    for _ in range(5):
        side = math.ceil(side / 2)
    return side


class _Recorder:
    """Mixin: ``self.keep(name=tensor)`` stores a named intermediate while :func:`traced` is active."""

    _trace: dict[str, torch.Tensor] | None = None

    def keep(self, **tensors: torch.Tensor) -> None:
        if self._trace is not None:
            self._trace.update(tensors)


@contextmanager
def traced(model: nn.Module) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """Within the block, forward passes of ``model`` record the intermediates of its AFC, DAF and MHSCA
    modules, named as in the paper, under each module's name: ``record["daf"]["A_s"]``,
    ``record["mhsca.heads.0"]["x_s"]`` (the teaching walkthrough reads them; the maths stays here)."""
    record: dict[str, dict[str, torch.Tensor]] = {}
    recorders = [(name, m) for name, m in model.named_modules() if isinstance(m, _Recorder)]
    for name, m in recorders:
        m._trace = record.setdefault(name, {})
    try:
        yield record
    finally:
        for _, m in recorders:
            m._trace = None


class AFC(_Recorder, nn.Module):
    """Adaptive feature calibration (Eq. 1-3, Algorithm 1): x_F -> x_F', same shape."""

    def __init__(self, channels: int = 512, reduction: int = 16, fusion: str = "sum"):
        super().__init__()
        if fusion not in ("sum", "concat"):
            raise ValueError(f"afc_fusion must be 'sum' or 'concat', not {fusion!r}")
        self.fusion = fusion
        # Eq. 1: three 3x3 convolutions with (padding, dilation) = (1, 1), (2, 2), (4, 4), each + ReLU.
        self.dilated = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.ReLU(inplace=True))
            for d in (1, 2, 4)
        )
        # Eq. 1 and Alg. 1 sum the branches; the prose's "concatenate, then 1x1 conv" is fusion="concat" (3C -> C).
        fused_in = channels if fusion == "sum" else 3 * channels
        # Eq. 2, x_Fint = ReLU(BN(Conv1x1(x_Fsum))).
        self.integrate = nn.Sequential(
            nn.Conv2d(fused_in, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        # Eq. 2, spatial weight sigma(Conv1x1(x_F)): one weight per position (Alg. 1 step 6).
        self.spatial = nn.Conv2d(channels, 1, 1)
        # Eq. 3, x_FDre = Conv1x1(GAP(.)) with reduction r, x_FDra = Conv1x1(ReLU(x_FDre)).
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.restore = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x_f: torch.Tensor) -> torch.Tensor:
        branches = [conv(x_f) for conv in self.dilated]  # Eq. 1: x_F1, x_F2, x_F3
        x_sum = sum(branches) if self.fusion == "sum" else torch.cat(branches, dim=1)  # Eq. 1: x_Fsum
        x_int = self.integrate(x_sum)  # Eq. 2: x_Fint
        x_cal_s = sigmoid32(self.spatial(x_f)) * x_int  # Eq. 2: x_FcalS
        x_dre = self.reduce(F.adaptive_avg_pool2d(x_cal_s, 1))  # Eq. 3: x_FDre
        x_dra = self.restore(F.relu(x_dre))  # Eq. 3: x_FDra
        x_cal_c = sigmoid32(x_dra) * x_cal_s  # Eq. 3: x_FcalC
        x_f1 = x_f + x_cal_c  # Eq. 3: x_F' (residual)
        self.keep(**{f"x_F{k}": b for k, b in enumerate(branches, start=1)}, x_Fsum=x_sum, x_Fint=x_int,
                  x_FcalS=x_cal_s, x_FDre=x_dre, x_FDra=x_dra, x_FcalC=x_cal_c, **{"x_F'": x_f1})
        return x_f1


class _Tokens(nn.Module):
    """Linear embedding + learnable positional encoding + LayerNorm of one direction's tokens (Alg. 2 steps 3-4)."""

    def __init__(self, channels: int, length: int):
        super().__init__()
        self.embed = nn.Linear(channels, channels)
        self.position = nn.Parameter(torch.zeros(1, length, channels))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.norm = nn.LayerNorm(channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.embed(tokens) + self.position)


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(C)) V, as in Eq. 6 and 7 (C = token width)."""
    return F.scaled_dot_product_attention(query, key, value, scale=1.0 / math.sqrt(query.shape[-1]))


class DAF(_Recorder, nn.Module):
    """Directional attention fusion (Eq. 4-8, Algorithm 2): x_F' -> (A_s: B x C x h x w, A_c: B x C).

    ``cross="standard"`` lets the queries of one direction attend to the keys and values of the other
    (H->W and W->H). ``cross="literal"`` computes Eq. 7 as printed, softmax(Q_Hc K_Hc^T) V_Wc, which
    only has matching shapes when h == w.

    ``concat`` reads Eq. 7's concat{.,.} W_Ca: ``"tokens"`` (default) stacks the h + w cross-attended
    tokens, W_Ca maps C -> C and the result is split back into an H part (added to x_Ha) and a W part
    (added to x_Wa); ``"channels"`` concatenates the two along channels, W_Ca maps 2C -> C, and the one
    x_Ca is added to both terms, as Eq. 8 is printed (needs h == w).
    """

    def __init__(self, channels: int = 512, height: int = 7, width: int = 7, cross: str = "standard", concat: str = "tokens"):
        super().__init__()
        if cross not in ("standard", "literal"):
            raise ValueError(f"daf_cross must be 'standard' or 'literal', not {cross!r}")
        if concat not in ("tokens", "channels"):
            raise ValueError(f"daf_concat must be 'tokens' or 'channels', not {concat!r}")
        if (cross == "literal" or concat == "channels") and height != width:
            raise ValueError(f"daf_cross='literal' and daf_concat='channels' need a square feature map, got {height} x {width}")
        self.cross, self.concat, self.height, self.width = cross, concat, height, width
        c = channels
        # Eq. 4: pointwise -> GDConv -> pointwise per direction. GDConv_H is a depthwise (1, w) kernel that
        # collapses the width (one token per row), GDConv_W a depthwise (h, 1) kernel (one token per column),
        # each + BN, as DDAMFN's Linear_block.
        self.branch_h = nn.Sequential(
            nn.Conv2d(c, c, 1), nn.Conv2d(c, c, (1, width), groups=c, bias=False), nn.BatchNorm2d(c), nn.Conv2d(c, c, 1)
        )
        self.branch_w = nn.Sequential(
            nn.Conv2d(c, c, 1), nn.Conv2d(c, c, (height, 1), groups=c, bias=False), nn.BatchNorm2d(c), nn.Conv2d(c, c, 1)
        )
        # Four embedded, position-encoded, normalised token sets: x_H', x_W' (self) and x_H'', x_W'' (cross).
        self.tokens_h_self, self.tokens_w_self = _Tokens(c, height), _Tokens(c, width)
        self.tokens_h_cross, self.tokens_w_cross = _Tokens(c, height), _Tokens(c, width)
        # Eq. 5: W_H^{Q,K,V}, W_W^{Q,K,V}; Eq. 7: the cross-attention projections and W_Ca.
        self.qkv_h = nn.Linear(c, 3 * c, bias=False)
        self.qkv_w = nn.Linear(c, 3 * c, bias=False)
        self.qkv_h_cross = nn.Linear(c, 3 * c, bias=False)
        self.qkv_w_cross = nn.Linear(c, 3 * c, bias=False)
        self.w_ca = nn.Linear(2 * c if concat == "channels" else c, c, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_h = self.branch_h(x).squeeze(3).transpose(1, 2)  # Eq. 4: x_H, B x h x C
        x_w = self.branch_w(x).squeeze(2).transpose(1, 2)  # Eq. 4: x_W, B x w x C
        q_h, k_h, v_h = self.qkv_h(self.tokens_h_self(x_h)).chunk(3, dim=-1)  # Eq. 5
        q_w, k_w, v_w = self.qkv_w(self.tokens_w_self(x_w)).chunk(3, dim=-1)  # Eq. 5
        x_ha = _attend(q_h, k_h, v_h)  # Eq. 6: x_Ha
        x_wa = _attend(q_w, k_w, v_w)  # Eq. 6: x_Wa
        q_hc, k_hc, v_hc = self.qkv_h_cross(self.tokens_h_cross(x_h)).chunk(3, dim=-1)
        q_wc, k_wc, v_wc = self.qkv_w_cross(self.tokens_w_cross(x_w)).chunk(3, dim=-1)
        if self.cross == "standard":
            h_to_w, w_to_h = _attend(q_hc, k_wc, v_wc), _attend(q_wc, k_hc, v_hc)
        else:
            h_to_w, w_to_h = _attend(q_hc, k_hc, v_wc), _attend(q_wc, k_wc, v_hc)
        if self.concat == "tokens":
            x_ca = self.w_ca(torch.cat([h_to_w, w_to_h], dim=1))  # Eq. 7: concat{...} W_Ca over the h + w tokens
            x_ca_h, x_ca_w = x_ca.split([self.height, self.width], dim=1)  # the H part joins x_Ha, the W part x_Wa
        else:
            x_ca = self.w_ca(torch.cat([h_to_w, w_to_h], dim=2))  # Eq. 7 over channels: B x h x 2C -> B x h x C
            x_ca_h = x_ca_w = x_ca  # Eq. 8 as printed: one x_Ca in both terms
        a_h = sigmoid32(x_ha + x_ca_h).transpose(1, 2).unsqueeze(3)  # B x C x h x 1
        a_w = sigmoid32(x_wa + x_ca_w).transpose(1, 2).unsqueeze(2)  # B x C x 1 x w
        a_s = a_h * a_w  # Eq. 8: A_s, broadcast to B x C x h x w as in coordinate attention
        a_c = a_s.mean(dim=(2, 3))  # Eq. 12: A_c = GAP(A_s)
        self.keep(x_H=x_h, x_W=x_w, Q_H=q_h, Q_W=q_w, x_Ha=x_ha, x_Wa=x_wa, x_Ca=x_ca, a_H=a_h, a_W=a_w, A_s=a_s, A_c=a_c)
        return a_s, a_c


class SpatialChannelHead(_Recorder, nn.Module):
    """One MHSCA head (Eq. 9-12): a DAN-style spatial branch with the paper's sigmoid, then channel attention.

    ``gate="elementwise"`` is Eq. 9 as printed: a sigmoid per channel and position, multiplied with x_F'.
    ``gate="channel_sum"`` is DAN's form: the branch sum is summed over channels into one map, here
    through the paper's sigmoid. The head's spatial map (for Eq. 16 and the figures) is the channel
    mean of the gate.
    """

    def __init__(self, channels: int = 512, reduced: int = 256, reduction: int = 16, use_ca: bool = True, gate: str = "elementwise"):
        super().__init__()
        if gate not in ("elementwise", "channel_sum"):
            raise ValueError(f"head_gate must be 'elementwise' or 'channel_sum', not {gate!r}")
        self.gate = gate
        self.conv1x1 = nn.Sequential(nn.Conv2d(channels, reduced, 1), nn.BatchNorm2d(reduced))
        self.conv3x3 = nn.Sequential(nn.Conv2d(reduced, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.conv1x3 = nn.Sequential(nn.Conv2d(reduced, channels, (1, 3), padding=(0, 1)), nn.BatchNorm2d(channels))
        self.conv3x1 = nn.Sequential(nn.Conv2d(reduced, channels, (3, 1), padding=(1, 0)), nn.BatchNorm2d(channels))
        # Eq. 11: Linear(reduce) -> ReLU -> Linear(restore), then sigmoid.
        self.channel = (
            nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True), nn.Linear(channels // reduction, channels))
            if use_ca
            else None
        )

    def forward(self, x: torch.Tensor, a_s: torch.Tensor | None, a_c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv1x1(x)
        branch = self.conv3x3(y) + self.conv1x3(y) + self.conv3x1(y)
        gate = sigmoid32(branch if self.gate == "elementwise" else branch.sum(dim=1, keepdim=True))
        x_s = gate * x  # Eq. 9: x_s
        x_s_tilde = x_s if a_s is None else a_s * x_s  # Eq. 10: x~_s = A_s . x_s
        pooled = x_s_tilde.mean(dim=(2, 3))  # GAP(x~_s)
        # Eq. 11 weights x~_s channel-wise; pooling first is the same vector, since GAP is linear.
        x_c = pooled if self.channel is None else sigmoid32(self.channel(pooled)) * pooled
        x_c_tilde = x_c if a_c is None else a_c * x_c  # Eq. 12: x~_c = A_c . x_c
        self.keep(gate=gate, x_s=x_s, x_s_tilde=x_s_tilde, x_c=x_c, x_c_tilde=x_c_tilde)
        return x_c_tilde, gate.mean(dim=1)


class MHSCA(_Recorder, nn.Module):
    """Multi-head spatial-channel attention (Eq. 13, Algorithm 3): sum of N_h heads' x~_c."""

    def __init__(self, channels: int = 512, num_heads: int = 4, use_ca: bool = True, gate: str = "elementwise"):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, not {num_heads}")
        self.heads = nn.ModuleList(SpatialChannelHead(channels, use_ca=use_ca, gate=gate) for _ in range(num_heads))

    def forward(self, x: torch.Tensor, a_s: torch.Tensor | None, a_c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outs, maps = zip(*(head(x, a_s, a_c) for head in self.heads))
        heads = torch.stack(outs, dim=1)  # B x N_h x C
        x_out = heads.sum(dim=1)  # Eq. 13: x_out
        self.keep(x_out=x_out)
        return x_out, heads, torch.stack(maps, dim=1)  # per-head vectors; B x N_h x h x w


@register_model("daf_mhsca")
class DAFMHSCA(_Recorder, nn.Module):
    """DAF-MHSCA with the ablation switches of Table 4 and the head count of Table 5.

    Args:
        num_classes: classifier outputs (7 or 8).
        image_size: square input side; the DAF kernels and positional encodings follow from it.
        num_heads: N_h of MHSCA (Table 5: 1, 2, 4, 8, 16).
        use_afc: False gives "w/o AFC" (x_F' = x_F).
        use_daf: False gives "w/o DAF" (A_s = A_c = 1).
        use_ca: False gives "w/o CA" (heads without channel attention).
        use_mhsca: False gives "w/o MHSCA" (GAP(x_F' * A_s) goes straight to the classifier).
        afc_fusion: "sum" (Eq. 1, default) or "concat" (the prose).
        daf_cross: "standard" (default) or "literal" Eq. 7.
        daf_concat: Eq. 7's concat over "tokens" (default) or "channels" (W_Ca 2C -> C, one x_Ca in both terms of Eq. 8).
        head_gate: "elementwise" (Eq. 9, default) or "channel_sum" (DAN's single map).
        pretrained: local ResNet18 weights file; None starts from random initialisation.
    """

    criterion = "daf_mhsca"

    def __init__(
        self,
        num_classes: int = 7,
        image_size: int = 224,
        num_heads: int = 4,
        use_afc: bool = True,
        use_daf: bool = True,
        use_ca: bool = True,
        use_mhsca: bool = True,
        afc_fusion: str = "sum",
        daf_cross: str = "standard",
        daf_concat: str = "tokens",
        head_gate: str = "elementwise",
        afc_reduction: int = 16,
        pretrained: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.input_spec = InputSpec(size=image_size)
        side = feature_size(image_size)
        self.trunk = build_trunk(pretrained)
        self.afc = AFC(512, afc_reduction, afc_fusion) if use_afc else None
        self.daf = DAF(512, side, side, daf_cross, daf_concat) if use_daf else None
        self.mhsca = MHSCA(512, num_heads, use_ca, head_gate) if use_mhsca else None
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x_f = self.trunk(x)  # Section 2.2: x_F, B x 512 x H/32 x W/32
        x_f1 = self.afc(x_f) if self.afc is not None else x_f  # x_F'
        a_s, a_c = self.daf(x_f1) if self.daf is not None else (None, None)
        extras = {"x": x_f1}
        if a_s is not None:
            extras.update(A_s=a_s, A_c=a_c)
        if self.mhsca is not None:
            x_out, heads, head_maps = self.mhsca(x_f1, a_s, a_c)
        else:
            x_out = (x_f1 if a_s is None else a_s * x_f1).mean(dim=(2, 3))
            heads = head_maps = None
        logits = self.classifier(x_out)
        self.keep(x_F=x_f, x_out=x_out, logits=logits)
        return ModelOutput(logits, x_out, head_maps=head_maps, heads=heads, extras=extras)
