"""The losses of DAF-MHSCA (Section 2.5, Eq. 14-17) and of the baselines it is compared with.

Every criterion takes a :class:`~fer_lib.models.ModelOutput` and the labels and returns a
:class:`LossOutput`: the total to back-propagate and its parts (detached) for logging.
Pick one by the model's ``criterion`` name with :func:`build_criterion`.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fer_lib.models import ModelOutput

EPS = 1e-6  # the paper's epsilon in Eq. 14 and 15


@dataclass
class LossOutput:
    """``total`` is what training back-propagates; ``parts`` holds each term (detached) for logging."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


def class_weights(class_counts: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Eq. 14: w_c = sqrt(N_max / (N_c + eps)), from the training split's per-class counts."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    return torch.sqrt(counts.max() / (counts + eps)).float()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Eq. 14: (1/N) sum_i w_{y_i} * CE_i.

    Divides by N as the paper writes it, not by sum(w_{y_i}) as ``F.cross_entropy(weight=...)`` does.
    """
    ce = F.cross_entropy(logits, labels, reduction="none")
    if weights is not None:
        ce = ce * weights.to(ce.device)[labels]
    return ce.mean()


class AffinityLoss(nn.Module):
    """Eq. 15 (and DAN's affinity loss): squared distance to learnable class centres over their variance.

    L = (1/N) sum_i w_{y_i} ||f_i - m_{y_i}||^2 / (sigma_M^2 + eps), sigma_M^2 = sum over dimensions of
    the variance of the centres across classes (as DAN computes it). ``weights=None`` gives DAN's
    unweighted form. The centres are parameters: optimise ``criterion.parameters()`` with the model.
    """

    def __init__(self, num_classes: int, feat_dim: int, weights: torch.Tensor | None = None, eps: float = EPS):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))
        self.eps = eps
        self.register_buffer("weights", weights if weights is not None else torch.ones(num_classes))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = (features.float() - self.centers[labels]).pow(2).sum(dim=1)
        spread = self.centers.var(dim=0).sum()
        return (self.weights[labels] * dist).mean() / (spread + self.eps)


def diversity_loss(
    head_maps: torch.Tensor | None, alpha: float = 0.7, beta: float = 0.3, variance: str = "heads"
) -> torch.Tensor:
    """Eq. 16, L_mhv = -alpha * mean_{b,h,w} Var(A_{b,h,w}) + beta * mean_{i<j} cos(A_i, A_j).

    head_maps: B x N x h x w. ``variance="heads"`` is the equation (variance across the N heads at
    each position); ``"spatial"`` is the prose's reading (each head's variance over its own map).
    The pair term reads 2/(N(N-1)) sum_{i != j} as the mean over the N(N-1)/2 unordered pairs;
    cosine similarity is taken per sample between flattened h x w maps, then averaged over the batch.
    Zero when there is no map or a single head has no pair.
    """
    if head_maps is None:
        return torch.zeros(())
    b, n = head_maps.shape[:2]
    maps = head_maps.float().reshape(b, n, -1)
    if variance == "heads":
        var = maps.var(dim=1, unbiased=False).mean()
    elif variance == "spatial":
        var = maps.var(dim=2, unbiased=False).mean()
    else:
        raise ValueError(f"variance must be 'heads' or 'spatial', not {variance!r}")
    if n < 2:
        return -alpha * var
    unit = F.normalize(maps, dim=2)
    cos = torch.stack([(unit[:, i] * unit[:, j]).sum(dim=1).mean() for i, j in itertools.combinations(range(n), 2)])
    return -alpha * var + beta * cos.mean()


def partition_loss(heads: torch.Tensor | None) -> torch.Tensor:
    """DAN's partition loss: log(1 + N / mean variance across the N heads' feature vectors)."""
    if heads is None or heads.shape[1] < 2:
        return torch.zeros(())
    return torch.log1p(heads.shape[1] / heads.float().var(dim=1).mean())


def ddamfn_attention_loss(heads: torch.Tensor | None) -> torch.Tensor:
    """DDAMFN's attention loss: number of head pairs over the sum of their mean squared differences."""
    if heads is None or heads.shape[1] < 2:
        return torch.zeros(())
    pairs = list(itertools.combinations(range(heads.shape[1]), 2))
    mse = sum(F.mse_loss(heads[:, i].float(), heads[:, j].float()) for i, j in pairs)
    return len(pairs) / (mse + sys.float_info.epsilon)


class CrossEntropyCriterion(nn.Module):
    """Plain (optionally class-weighted, Eq. 14) cross-entropy: the ResNet18 and mini-Xception recipe."""

    def __init__(self, class_counts: torch.Tensor, num_classes: int, feat_dim: int, weighted: bool = False):
        super().__init__()
        self.register_buffer("class_w", class_weights(class_counts) if weighted else None)

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> LossOutput:
        ce = weighted_cross_entropy(output.logits, labels, self.class_w)
        return LossOutput(ce, {"ce": ce.detach()})


class DAFMHSCACriterion(nn.Module):
    """Eq. 17: L_total = L_wce + L_dna + theta * L_mhv.

    ``weighting="fixed"`` is Eq. 17 as printed (the default). The paper also says a "gradient gating
    mechanism" adjusts the weights by the relative gradient magnitudes but gives no rule; our
    ``weighting="gated"`` rule: each auxiliary term k is scaled by min(1, ||dL_wce/dx|| / ||d(w_k L_k)/dx||),
    measured on the shared feature map x = x_F' and detached, so no auxiliary term pushes x harder than
    the classification loss does. The gates are logged as ``gate_dna`` and ``gate_mhv``.
    """

    def __init__(
        self,
        class_counts: torch.Tensor,
        num_classes: int,
        feat_dim: int,
        theta: float = 0.3,
        alpha: float = 0.7,
        beta: float = 0.3,
        use_wce_weights: bool = True,
        use_affinity: bool = True,
        use_diversity: bool = True,
        variance: str = "heads",
        weighting: str = "fixed",
    ):
        super().__init__()
        if weighting not in ("fixed", "gated"):
            raise ValueError(f"weighting must be 'fixed' or 'gated', not {weighting!r}")
        for name, value in (("theta", theta), ("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a non-negative number, not {value!r}")
        weights = class_weights(class_counts)
        self.register_buffer("class_w", weights if use_wce_weights else None)
        self.affinity = AffinityLoss(num_classes, feat_dim, weights) if use_affinity else None
        self.theta, self.alpha, self.beta = theta, alpha, beta
        self.use_diversity, self.variance, self.weighting = use_diversity, variance, weighting
        self.probe_grads = False  # set by the trainer on some steps: log each term's gradient norm at x_F'

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> LossOutput:
        wce = weighted_cross_entropy(output.logits, labels, self.class_w)
        dna = self.affinity(output.features, labels) if self.affinity is not None else wce.new_zeros(())
        mhv = (
            diversity_loss(output.head_maps, self.alpha, self.beta, self.variance).to(wce.device)
            if self.use_diversity
            else wce.new_zeros(())
        )
        parts = {"wce": wce.detach(), "dna": dna.detach(), "mhv": mhv.detach()}
        w_dna, w_mhv = 1.0, self.theta
        if self.weighting == "gated" and self.training and torch.is_grad_enabled():
            shared = output.extras["x"]
            g_wce = _grad_norm(wce, shared)
            w_dna *= _gate(g_wce, _grad_norm(w_dna * dna, shared))
            w_mhv *= _gate(g_wce, _grad_norm(w_mhv * mhv, shared))
            parts["gate_dna"], parts["gate_mhv"] = torch.tensor(w_dna), torch.tensor(w_mhv / self.theta if self.theta else 1.0)
        if self.probe_grads and torch.is_grad_enabled() and "x" in output.extras:
            shared = output.extras["x"]
            for name, term in (("wce", wce), ("dna", w_dna * dna), ("mhv", w_mhv * mhv)):
                parts[f"grad_{name}"] = torch.tensor(_grad_norm(term, shared))
        total = wce + w_dna * dna + w_mhv * mhv
        return LossOutput(total, parts)


def _grad_norm(loss: torch.Tensor, wrt: torch.Tensor) -> float:
    if not loss.requires_grad:
        return 0.0
    (grad,) = torch.autograd.grad(loss, wrt, retain_graph=True, allow_unused=True)
    return 0.0 if grad is None else float(grad.norm())


def _gate(reference: float, other: float) -> float:
    return 1.0 if other <= reference or other == 0.0 else reference / other


class DANCriterion(nn.Module):
    """DAN (Wen et al. 2023): CE + affinity loss (unweighted, on GAP of the trunk) + partition loss."""

    def __init__(self, class_counts: torch.Tensor, num_classes: int, feat_dim: int):
        super().__init__()
        self.affinity = AffinityLoss(num_classes, feat_dim)

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> LossOutput:
        ce = F.cross_entropy(output.logits, labels)
        af = self.affinity(output.features, labels)
        pt = partition_loss(output.heads).to(ce.device)
        return LossOutput(ce + af + pt, {"ce": ce.detach(), "affinity": af.detach(), "partition": pt.detach()})


class DDAMFNCriterion(nn.Module):
    """DDAMFN (Zhang et al. 2023): CE + 0.1 x attention loss between its heads."""

    def __init__(self, class_counts: torch.Tensor, num_classes: int, feat_dim: int, attention_weight: float = 0.1):
        super().__init__()
        self.attention_weight = attention_weight

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> LossOutput:
        ce = F.cross_entropy(output.logits, labels)
        at = ddamfn_attention_loss(output.heads).to(ce.device)
        return LossOutput(ce + self.attention_weight * at, {"ce": ce.detach(), "attention": at.detach()})


CRITERIA: dict[str, Callable[..., nn.Module]] = {
    "ce": CrossEntropyCriterion,
    "daf_mhsca": DAFMHSCACriterion,
    "dan": DANCriterion,
    "ddamfn": DDAMFNCriterion,
}


def build_criterion(
    name: str, class_counts: torch.Tensor, num_classes: int, feat_dim: int, **options: object
) -> nn.Module:
    """The loss recipe ``name`` (a model's ``criterion`` attribute) for a training split's class counts."""
    if name not in CRITERIA:
        raise KeyError(f"unknown criterion {name!r}; choose one of {sorted(CRITERIA)}")
    if len(class_counts) != num_classes:
        raise ValueError(f"class_counts has {len(class_counts)} entries for {num_classes} classes")
    return CRITERIA[name](class_counts=class_counts, num_classes=num_classes, feat_dim=feat_dim, **options)
