#!/bin/sh
# The GPU figures of bench/RESULTS.md, as one short script for a machine with a CUDA GPU
# (the `device` tool's H200, or any other): corpus-free, so it needs only the repository.
#   sh bench/gpu.sh            -> bench/RESULTS_gpu.md
# Rows: an EM iteration at AN4 tri1's size on CPU and in torch on the GPU; DNN (440-6x1024-2000)
# and CTC (4x320 BiLSTM) training rates beside the bare networks on random data in GPU memory,
# fp32 and bf16. Targets (issue 19): DNN and CTC >= 70% of bare; EM >= 10x this CPU.
set -e
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || make setup
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print(torch.cuda.get_device_name(0))"
.venv/bin/python bench/run_bench.py --runs 3 --only em_iteration_synthetic,dnn_training,ctc_training \
  --out bench/RESULTS_gpu.md
cat bench/RESULTS_gpu.md
