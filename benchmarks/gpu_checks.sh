#!/usr/bin/env bash
# The README's GPU rows in one go, on one GPU machine (each step time-bounded: 9 minutes at most):
#   1. minilm-l6 training throughput against plain and well-configured Trainer (target >= 2,000
#      samples/s, >= 1.5x plain Trainer);
#   2. smollm2-135m classifier, the same (target >= 400 samples/s, >= 1.5x), under bf16 autocast and
#      with bf16 weights + fp32 master copies (TUNELAB_PRECISION=bf16), and at batch 128 (its loop
#      waits on the host launching kernels: a larger batch does more per launch). Where the time
#      goes: the same command with --profile --rows 2048;
#   3. serving against the FastAPI + pipeline peer.
#
#   bash benchmarks/gpu_checks.sh [MODELS] [OUT]
#
# MODELS: a folder with minilm-l6/ and smollm2-135m/ (benchmarks/pack_models.py writes one, for a
# machine without the packages that carry the weights); default: the packaged models.
# OUT: where each step's output and JSON go (default: gpu-checks/).
set -uo pipefail
MODELS=${1:-}
OUT=${2:-gpu-checks}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
minilm=${MODELS:+$MODELS/}minilm-l6
smollm=${MODELS:+$MODELS/}smollm2-135m

step() {  # step NAME SECONDS COMMAND...: run, keep the output, go on whatever happens
    local name=$1 limit=$2; shift 2
    echo "== $name ($(date +%T), at most ${limit}s): $*"
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    echo "   exit $?"; tail -n 14 "$OUT/$name.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

step minilm 110 $PY benchmarks/train_throughput.py --device cuda --model "$minilm" --rows 16384 \
    --batch-size 128 --json "$OUT/minilm.json"
step smollm2-autocast 130 $PY benchmarks/train_throughput.py --device cuda --model "$smollm" --rows 6144 \
    --batch-size 64 --runs plain,tunelab --json "$OUT/smollm2-autocast.json"
step smollm2-bf16-weights 80 env TUNELAB_PRECISION=bf16 $PY benchmarks/train_throughput.py --device cuda \
    --model "$smollm" --rows 6144 --batch-size 64 --runs tunelab --json "$OUT/smollm2-bf16.json"
step smollm2-batch128 100 $PY benchmarks/train_throughput.py --device cuda --model "$smollm" --rows 6144 \
    --batch-size 128 --runs plain,tunelab --json "$OUT/smollm2-batch128.json"
step serve 120 $PY benchmarks/serve_throughput.py --peer naive --log-rounds 0 --requests 600 \
    --json "$OUT/serve.json"
echo "== done ($(date +%T)); outputs in $OUT/"
