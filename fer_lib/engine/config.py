"""A run described once: :class:`RunConfig` and its stable id."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fer_lib.engine.recipes import PROFILES, Plan, ConfigError, resolve_plan

ID_HASH_CHARS = 10
# Part of every run id: bump it when a change to the training code (loop, losses, models, augmentation)
# changes what a config trains, so records made before it are never mistaken for the new code's.
# 3: attention gates' sigmoids in fp32 under bf16 autocast (models.layers.sigmoid32; in bf16 training collapsed).
TRAINING_CODE_VERSION = 3


def _plain(value: Any, where: str) -> Any:
    """A JSON-ready copy of an option value (tuples become lists); raise ConfigError otherwise."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: non-finite number {value!r}")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: option names must be strings")
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(f"{where}: {type(value).__name__} is not JSON (use str, int, float, bool, list or dict)")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces: the same content always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@dataclass(frozen=True)
class RunConfig:
    """One training run: what to train, on what, with which recipe, at which scale, from which seed.

    dataset, model: registered names (``fer_lib.data`` / ``fer_lib.models``).
    model_options: keyword arguments of the model (ablation switches, ``num_heads``...).
    loss_options: keyword arguments of its criterion (``theta``, ``weighting``...).
    recipe: a name of ``recipes.RECIPES`` (None: the profile's own); profile: ``"smoke"``, ``"cpu"`` or ``"paper"``.
    image_size: None takes the profile's size.
    overrides: recipe fields set by hand (``epochs``, ``lr``, ``batch_size``, ``train_subset``, ...).
    data_options: keyword arguments of ``load_dataset`` (never a machine path: set $FER_DATA).

    Treat the option dicts as read-only: the id is computed from their contents.
    """

    dataset: str
    model: str = "daf_mhsca"
    model_options: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    profile: str = "smoke"
    seed: int = 0
    image_size: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.recipe is None:
            if self.profile not in PROFILES:
                raise ConfigError(f"unknown profile {self.profile!r}; choose one of {sorted(PROFILES)}")
            object.__setattr__(self, "recipe", PROFILES[self.profile].recipe)
        for name in ("dataset", "model", "recipe", "profile"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"RunConfig.{name} must be a non-empty string, not {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"RunConfig.seed must be a non-negative integer, not {self.seed!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or isinstance(self.image_size, bool)):
            raise ConfigError(f"RunConfig.image_size must be an integer or None, not {self.image_size!r}")
        for name in ("model_options", "loss_options", "overrides", "data_options"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(f"RunConfig.{name} must be a dict, not {type(value).__name__}")
            object.__setattr__(self, name, _plain(value, name))  # private copy, tuples as lists

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def plan(self) -> Plan:
        """The resolved recipe x profile (raises ConfigError for an unknown recipe or profile)."""
        return resolve_plan(self.dataset, self.recipe, self.profile, self.image_size, self.overrides, self.data_options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown RunConfig field(s) {unknown}")
        return cls(**data)

    @property
    def id(self) -> str:
        """``<dataset>-<model>-<profile>-<hash>``: the hash covers the config, its resolved plan and
        :data:`TRAINING_CODE_VERSION`, so a change of any (a recipe table edited later, a fix to the
        trainer) gives a new run. The data is checked separately: see ``runs.get_run``."""
        return run_id(self.to_dict(), self.plan.to_dict())


def run_id(config: dict[str, Any], plan: dict[str, Any], code: int | None = None) -> str:
    """The id of a run from its config and plan dicts (as config.json stores them) and its training code
    (None: the current :data:`TRAINING_CODE_VERSION`)."""
    text = canonical_json({"config": config, "plan": plan, "code": TRAINING_CODE_VERSION if code is None else code})
    digest = hashlib.sha256(text.encode()).hexdigest()[:ID_HASH_CHARS]
    return f"{config['dataset']}-{config['model']}-{config['profile']}-{digest}"
