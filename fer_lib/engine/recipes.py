"""Training recipes (what the paper prescribes) and profiles (how far a machine scales them down).

A *recipe* gives the optimiser, learning rate, batch size and epochs per dataset: ``"paper"`` is
Table 2 as printed, ``"ours"`` is our working alternative where the printed value fails,
``"scratch"`` is ours for a trunk without pretrained weights, ``"dan"`` / ``"ddamfn"`` are those
papers' own recipes. A *profile* (:class:`Profile`) scales a recipe to a machine: ``"smoke"``
(built-in synthetic faces, seconds, for tests), ``"demo"`` (more built-in faces, trained until the models
learn them), ``"cpu"`` (real FER2013 / FERPlus on 2 cores:
72 px, 8 epochs, the full training split, recipe scratch with gradients clipped at norm 5) and ``"paper"`` (224 px, 40 epochs, for a GPU). :func:`resolve_plan` combines the two
into a :class:`Plan`; every reduction a profile makes is written into its ``notes`` and so into
the run's record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Table 2 of the paper: Adam, 40 epochs, no schedule; the lr and batch of each dataset are in its
# description (fer_lib.data.DatasetInfo.table2, read through fer_lib.data.table2_row).
PAPER_EPOCHS = 40
PAPER_IMAGE_SIZE = 224
DEFAULT_NUM_CLASSES = 7  # a dataset whose classes are read from its files (an image folder)

RECIPES: dict[str, str] = {
    "paper": "Table 2 as printed: Adam, 40 epochs, no schedule, lr 1e-4 (RAF-DB 0.1), batch 256 (FERPlus 64)",
    "ours": "Table 2 except RAF-DB lr 1e-4 (Adam at the printed 0.1 diverges); labelled as ours",
    "scratch": "ours, for a trunk trained from random initialisation: AdamW lr 5e-4, weight decay 0.05, "
    "batch 128, one warm-up epoch then cosine decay to zero; the paper's three losses unchanged",
    "dan": "DAN's published recipe (github yaoing/DAN): SGD lr 0.1, momentum 0.9, weight decay 1e-4, lr x 0.6 per epoch",
    "ddamfn": "DDAMFN's published recipe (github SainingZhang/DDAMFN): SGD lr 0.01, momentum 0.9, weight decay 1e-4, lr x 0.6 per epoch",
}

# Recipes that set every dataset alike (Table 2's per-dataset lr and batch do not apply).
UNIFORM_RECIPES: dict[str, dict[str, Any]] = {
    # lr 5e-4, not 1e-3: at 1e-3 DAF-MHSCA's training accuracy fell during the peak-lr epochs, and with
    # clipping 1e-3 learned no faster and validated 1.9 points lower (docs/cpu_study.md)
    "scratch": {"optimizer": "adamw", "lr": 5e-4, "batch_size": 128, "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 1},
    "dan": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4, "momentum": 0.9, "schedule": "exponential"},
    "ddamfn": {"optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-4, "momentum": 0.9, "schedule": "exponential"},
}
EXPONENTIAL_GAMMA = 0.6  # DAN's and DDAMFN's ExponentialLR(gamma=0.6), stepped once per epoch


# Every random augmentation of fer_lib.data.pipeline.Augment switched off.
NO_AUGMENTATION = {"flip": 0.0, "affine_p": 0.0, "contrast_p": 0.0, "grayscale": 0.0, "noise_p": 0.0, "erasing": 0.0}


@dataclass(frozen=True)
class Profile:
    """How far a machine scales a recipe down; its :meth:`describe` is the one sentence every page prints."""

    name: str
    image_size: int
    epochs: int | None  # None: the recipe's (Table 2: 40)
    recipe: str  # the recipe a run of this profile takes unless it names one
    max_batch_size: int | None = None
    lr: float | None = None  # replaces the recipe's learning rate (None: the recipe's)
    grad_clip: float | None = None  # clips each step's gradient to this global norm, under the profile's own recipe only
    augment: dict[str, Any] = field(default_factory=dict)  # Augment options (empty: the paper's augmentations)
    train_subset: int | None = None
    faces: tuple[int, int, int] | None = None  # synthetic profiles: built-in faces per class (train, val, test)
    purpose: str = ""

    @property
    def synthetic(self) -> bool:
        """True for a profile that trains on the built-in synthetic faces (no dataset needed)."""
        return self.faces is not None

    def describe(self) -> str:
        if self.faces:
            data = f"built-in SYNTHETIC faces ({'/'.join(map(str, self.faces))} per class: train/val/test)"
        elif self.train_subset is None:
            data = "real data, full training split"
        else:
            data = f"real data, a fixed {self.train_subset}-face training subset"
        epochs = f"{self.epochs} epochs" if self.epochs else f"{PAPER_EPOCHS} epochs"
        changes = [f"batch at most {self.max_batch_size}"] if self.max_batch_size else []
        changes += [f"lr {self.lr:g}"] if self.lr is not None else []
        changes += [f"gradients clipped at norm {self.grad_clip:g}"] if self.grad_clip is not None else []
        changes += ["no augmentation"] if self.augment == NO_AUGMENTATION else []
        recipe = f"recipe {self.recipe} ({RECIPES[self.recipe]})" + (f", here with {', '.join(changes)}" if changes else "")
        return f"profile {self.name}: {self.purpose}; {data}, {self.image_size} px, {epochs}, {recipe}"


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        # Seconds on a laptop: synthetic faces, tiny images, two epochs, small batches (the test suite builds it).
        Profile("smoke", image_size=48, epochs=2, recipe="paper", max_batch_size=32, faces=(28, 7, 7),
                purpose="a pipeline check on 2 CPU cores, its numbers say nothing about the paper"),
        # The built-in faces at a budget where DAF-MHSCA learns them (90.5 % test, seed 0: docs/report.md);
        # no augmentation, which slowed learning on these faces.
        Profile("demo", image_size=48, epochs=3, recipe="scratch", max_batch_size=64, faces=(2000, 150, 150),
                augment=NO_AUGMENTATION,
                purpose="models trained on 2 CPU cores on faces whose answers are known, "
                "its numbers say nothing about the paper"),
        # Real FER2013 / FERPlus on 2 CPU cores (budget in docs/cpu_study.md): 72 px is the smallest size
        # whose x_F is 3 x 3 (64 px gives 2 x 2, where AFC's dilated convolutions are 1 x 1 ones).
        # Gradients clipped at norm 5: unclipped, 5 of 18 attention runs fell during training (docs/cpu_study.md).
        Profile("cpu", image_size=72, epochs=8, recipe="scratch", grad_clip=5.0,
                purpose="real data on 2 CPU cores, trained from scratch (no MS-Celeb-1M trunk)"),
        # The paper's setting, for a GPU.
        Profile("paper", image_size=PAPER_IMAGE_SIZE, epochs=None, recipe="paper",
                purpose="Table 2's setting, for a GPU"),
    )
}

# Fields of a Plan that RunConfig.overrides may set.
OVERRIDABLE = ("optimizer", "lr", "batch_size", "epochs", "weight_decay", "momentum", "train_subset", "augment",
               "eval_batch_size", "schedule", "warmup_epochs", "precision", "grad_clip")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "exponential")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the device supports it (resolved at train time)


@dataclass(frozen=True)
class Plan:
    """Everything the training loop needs besides the model: resolved from a recipe and a profile."""

    recipe: str
    profile: str
    dataset: str  # the dataset actually loaded ("synthetic" under the smoke profile)
    data_options: dict[str, Any]
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    weight_decay: float
    momentum: float
    schedule: str
    warmup_epochs: int
    precision: str
    grad_clip: float | None  # max global gradient norm before each step (None: no clipping)
    image_size: int
    train_subset: int | None
    augment: dict[str, Any]
    eval_batch_size: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (part of the run's id and of config.json)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        if out["grad_clip"] is None:  # added after records were made: left out at its default, so their ids hold
            del out["grad_clip"]
        return out


class ConfigError(ValueError):
    """A run configuration that cannot be trained; raised before any training starts."""


def resolve_plan(
    dataset: str,
    recipe: str,
    profile: str,
    image_size: int | None = None,
    overrides: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
) -> Plan:
    """Combine a recipe and a profile for one dataset into a :class:`Plan` (raises :class:`ConfigError`)."""
    overrides = dict(overrides or {})
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError(f"unknown override(s) {unknown}; allowed: {list(OVERRIDABLE)}")
    from fer_lib.data import dataset_info, table2_row

    prof = PROFILES[profile]
    info = dataset_info(dataset)
    row_name = (info.table2_row if info else None) or dataset  # fer2013_folder: FER2013's row
    row = table2_row(dataset)
    notes: list[str] = []  # hashed into the run id: rewording one renames every run of its plan (a test guards it)
    values: dict[str, Any] = {
        "optimizer": "adam", "lr": 1e-4, "batch_size": 256, "epochs": PAPER_EPOCHS, "weight_decay": 0.0,
        "momentum": 0.9, "train_subset": prof.train_subset, "augment": dict(prof.augment), "eval_batch_size": 256,
        "schedule": "none",  # Table 2 gives no schedule: the learning rate stays constant
        "warmup_epochs": 0, "precision": "auto", "grad_clip": None,
    }
    if recipe in UNIFORM_RECIPES:
        values.update(UNIFORM_RECIPES[recipe])
        notes.append(f"recipe {recipe}: {RECIPES[recipe]}, not Table 2")
    elif row is not None:
        values.update(row)
    else:
        values.update(table2_row("fer2013"))
        notes.append(f"{dataset} is not in Table 2: the FER2013 row (lr 1e-4, batch 256) is used")
    if recipe == "ours" and row_name == "rafdb":
        values["lr"] = 1e-4  # ours: Adam at Table 2's lr 0.1 diverges (DAN used 0.1 with SGD)
        notes.append("recipe ours: RAF-DB lr 1e-4 instead of Table 2's 0.1")

    if prof.max_batch_size is not None and values["batch_size"] > prof.max_batch_size:
        notes.append(f"profile {profile}: batch {values['batch_size']} -> {prof.max_batch_size}")
        values["batch_size"] = prof.max_batch_size
    if prof.lr is not None and prof.lr != values["lr"]:
        notes.append(f"profile {profile}: lr {values['lr']:g} -> {prof.lr:g}")
        values["lr"] = prof.lr
    if prof.grad_clip is not None and recipe == prof.recipe:  # another recipe (Table 2, DAN's) stays as published
        # The notes are part of the resolved plan, so of every run id: this text stays as the records have it.
        notes.append(f"profile {profile}: each step's gradient clipped at global norm {prof.grad_clip:g} (ours: without it "
                     "DAF-MHSCA's training fell at the peak lr on some seeds, docs/engine.md)")
        values["grad_clip"] = prof.grad_clip
    if prof.augment:
        notes.append(f"profile {profile}: augmentation {prof.augment} (the paper's augmentations: pipeline defaults)")
    size = int(image_size) if image_size is not None else prof.image_size
    if size != PAPER_IMAGE_SIZE:
        notes.append(f"image size {size} px (paper: {PAPER_IMAGE_SIZE})")
    if prof.epochs is not None:
        values["epochs"] = prof.epochs
        if prof.epochs != PAPER_EPOCHS:
            notes.append(f"profile {profile}: {prof.epochs} epochs (paper: {PAPER_EPOCHS})")
    if prof.train_subset is not None:
        notes.append(f"profile {profile}: training subset of {prof.train_subset} faces (fixed draw)")
    num_classes = (info.num_classes if info else None) or DEFAULT_NUM_CLASSES
    loaded = dataset
    options = dict(data_options or {})
    if prof.synthetic:
        loaded = "synthetic"
        options = {"num_classes": num_classes, "per_class": list(prof.faces), "size": size, **options}
        notes.append(f"profile {profile}: built-in synthetic faces with {num_classes} classes"
                     + (f", standing in for {dataset}" if dataset != loaded else ""))

    for key, value in overrides.items():
        notes.append(f"override {key}={value!r} (recipe value {values[key]!r})")
        values[key] = value
    _check(values, size)
    return Plan(recipe=recipe, profile=profile, dataset=loaded, data_options=options, image_size=size,
                notes=tuple(notes), **{k: values[k] for k in OVERRIDABLE})


def _check(values: dict[str, Any], size: int) -> None:
    """Raise ConfigError for a plan value no training could use (before anything is written)."""
    def number(key: str) -> float:
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{key} must be a number, not {v!r}")
        return float(v)

    if values["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {values['optimizer']!r}; choose one of {list(OPTIMIZERS)}")
    if values["schedule"] not in SCHEDULES:
        raise ConfigError(f"unknown schedule {values['schedule']!r}; choose one of {list(SCHEDULES)}")
    if values["precision"] not in PRECISIONS:
        raise ConfigError(f"unknown precision {values['precision']!r}; choose one of {list(PRECISIONS)}")
    for key in ("batch_size", "epochs", "eval_batch_size"):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{key} must be a positive integer, not {v!r}")
    if values["batch_size"] < 2:
        raise ConfigError("batch_size must be at least 2 (BatchNorm needs two faces per batch), not 1")
    w = values["warmup_epochs"]
    if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < values["epochs"]:
        raise ConfigError(f"warmup_epochs must be an integer in [0, epochs), not {w!r}")
    if not number("lr") > 0:
        raise ConfigError(f"lr must be positive, not {values['lr']!r} (a zero learning rate trains nothing)")
    if number("weight_decay") < 0 or not 0 <= number("momentum") < 1:
        raise ConfigError(f"weight_decay must be >= 0 and momentum in [0, 1), not {values['weight_decay']!r} / {values['momentum']!r}")
    if size < 32:
        raise ConfigError(f"image_size must be at least 32 (ResNet18 downsamples by 32), not {size}")
    clip = values["grad_clip"]
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
        raise ConfigError(f"grad_clip must be a positive number (max gradient norm) or None, not {clip!r}")
    sub = values["train_subset"]
    if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int) or sub < 1):
        raise ConfigError(f"train_subset must be a positive integer or None, not {sub!r}")
    if not isinstance(values["augment"], dict):
        raise ConfigError(f"augment must be a dict of Augment options, not {values['augment']!r}")
