"""Efficiency of every model (Figure 9, Sec. 3.8): :mod:`~fer_lib.efficiency.measurement` measures,
:mod:`~fer_lib.efficiency.tables` writes the generated tables and what the paper's numbers can mean."""

from fer_lib.efficiency.measurement import (
    ABLATIONS,
    MIB,
    PAPER_CLAIM,
    Entry,
    TrainStep,
    as_entry,
    complexity_table,
    count_macs,
    count_parameters,
    machine,
    measure,
    paper_entries,
    parameter_memory_mb,
    step_time_ratio,
    time_call,
    training_memory_mb,
)
from fer_lib.efficiency.tables import complexity_markdown, paper_claim_notes, results_markdown

__all__ = [
    "ABLATIONS", "MIB", "PAPER_CLAIM", "Entry", "TrainStep", "as_entry", "complexity_markdown", "complexity_table",
    "count_macs", "count_parameters", "machine", "measure", "paper_claim_notes", "paper_entries", "parameter_memory_mb",
    "results_markdown", "step_time_ratio", "time_call", "training_memory_mb",
]
