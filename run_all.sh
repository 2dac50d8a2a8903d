#!/usr/bin/env bash
# Regenerate every table and figure of the paper into one offline HTML report.
#
#   ./run_all.sh [--profile demo|smoke|cpu|paper] [--datasets NAME ...] [--seeds N ...] [--device D] [--force] [--plan] [--no-train] [--jobs N]
#
# Sets up .venv if needed, trains the runs that are missing (cached under results/runs/), executes
# notebooks/*.ipynb with papermill into results/report/<profile>/ and renders index.html, one page per
# notebook and reproduction_notes.html. An existing report is never overwritten: the run refuses, or
# with --force moves it aside to results/report/<profile>.<date>/. --plan lists the runs and trains nothing.
# Default: the demo profile on the built-in synthetic faces (models trained until they learn them; smoke is
# the minutes-long pipeline check the tests build). The real-data run on 2 CPU cores:
#   ./run_all.sh --profile cpu --datasets fer2013 ferplus
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup_env.sh
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m fer_lib.report "$@"
