#!/usr/bin/env bash
# The paper recipe on a GPU: DAF-MHSCA on FER2013 and FERPlus, Table 2 (Adam, lr 1e-4, batch 256 /
# 64, 40 epochs, no schedule), 224 px, profile "paper". Records go to results/runs/<id>/ (env.json
# holds the card's name and this command); checkpoints to the ignored results/runs/<id>/checkpoints/.
# A run already recorded is skipped; an interrupted one resumes from its last epoch.
#
#   scripts/gpu_paper.sh                  # one GPU
#   NPROC=4 scripts/gpu_paper.sh          # 4 GPUs of one machine, DistributedDataParallel (same global batch)
#   SEEDS="0 1 2" scripts/gpu_paper.sh    # several seeds
#   FER_DATA=/path/to/data scripts/gpu_paper.sh   # data elsewhere than ../shared/data
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
NPROC=${NPROC:-1}
SEEDS=${SEEDS:-0}
DATASETS=${DATASETS:-fer2013 ferplus}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
    echo "warning: no nvidia-smi: is there a GPU?" >&2
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'CUDA is not available to torch'; print('torch', torch.__version__, torch.cuda.get_device_name())"

if [ "$NPROC" -gt 1 ]; then
    LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m fer_lib)
else
    LAUNCH=("$PY" -m fer_lib)
fi

for dataset in $DATASETS; do
    # shellcheck disable=SC2086
    "$PY" -m fer_lib train --dry-run --dataset "$dataset" --model daf_mhsca --recipe paper --profile paper --seed $SEEDS \
        | grep -E '"(id|finished)"'
    # shellcheck disable=SC2086
    "${LAUNCH[@]}" train --dataset "$dataset" --model daf_mhsca --recipe paper --profile paper --device cuda --seed $SEEDS "$@"
done
echo "records: results/runs/ (commit config.json, history.jsonl, metrics.json and env.json; never checkpoints/)"
