"""Training and evaluation engine: a run is described once (:class:`RunConfig`), trained once, found again.

>>> cfg = RunConfig(dataset="fer2013", model="daf_mhsca", recipe="paper", profile="cpu", seed=0)
>>> run = get_run(cfg)                      # the cached record, or trained now (resumes if interrupted)
>>> run.metrics["best_val"]["test"]["accuracy"]
>>> model, spec = load_model(run)          # eval-mode model from the run's checkpoint
>>> pred = predict(model, data, split="test")
"""

from fer_lib.engine.config import RunConfig
from fer_lib.engine.evaluate import SELECTIONS, aggregate_seeds, classification_metrics, predict
from fer_lib.engine.recipes import PROFILES, RECIPES, ConfigError, Plan
from fer_lib.engine.records import RunRecord, list_runs, load_record, results_root, runs_dir
from fer_lib.engine.runs import get_run, get_runs, load_model, rebuild_weights

__all__ = [
    "ConfigError",
    "PROFILES",
    "Plan",
    "RECIPES",
    "RunConfig",
    "RunRecord",
    "SELECTIONS",
    "aggregate_seeds",
    "classification_metrics",
    "get_run",
    "get_runs",
    "list_runs",
    "load_model",
    "load_record",
    "predict",
    "rebuild_weights",
    "results_root",
    "runs_dir",
]
