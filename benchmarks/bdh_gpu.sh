#!/usr/bin/env bash
# The GPU rows of docs/bdh.md §5 in one run: BDH against the official code on one CUDA card.
#   bash benchmarks/bdh_gpu.sh REFERENCE_CLONE OUT_DIR
# Each part writes its own JSON into OUT_DIR, so a part that runs out of time loses only itself.
set -uo pipefail
REF=${1:?clone of github.com/pathwaycom/bdh}
OUT=${2:?output folder}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
B="python benchmarks/bdh.py --reference $REF --device cuda"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"
python -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.csv"
# 1. generation (fp32, eager): our recurrent step at 256 / 1,024 / 8,192 bytes, the reference at 1,024
timeout 90 $B --skip train --gen-contexts 256,1024,8192 --gen-tokens 48 --ref-gen-tokens 16 --out "$OUT/gen.json"
# 2. the 25M official configuration (multiplier 128), batch 32 x 512, bf16 autocast + torch.compile for both
timeout 200 $B --skip gen,refgen --amp bf16 --compile --multiplier 128 --train-T 512 --batch 32 --chunk 512 \
    --train-steps 5 --out "$OUT/train_25m_bf16_compile.json"
# 3. the CPU table's configuration (multiplier 16), fp32 eager
timeout 120 $B --skip gen,refgen --train-T 256,2048 --batch 8,8 --chunk 256,512 --train-steps 5 \
    --out "$OUT/train_fp32.json"
# 4. the same, bf16 autocast + torch.compile
timeout 170 $B --skip gen,refgen --amp bf16 --compile --train-T 256,2048 --batch 8,8 --chunk 256,512 \
    --train-steps 5 --out "$OUT/train_bf16_compile.json"
# 5. long windows (T = 8,192, batch 2), where the reference's T x T scores dominate
timeout 200 $B --skip gen,refgen --train-T 8192 --batch 2 --chunk 512 --train-steps 3 --out "$OUT/train_T8192_fp32.json"
timeout 200 $B --skip gen,refgen --amp bf16 --compile --train-T 8192 --batch 2 --chunk 1024 --train-steps 3 \
    --out "$OUT/train_T8192_bf16_compile.json"
ls -l "$OUT"
