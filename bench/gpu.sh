#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine (see ../shared/GPU.md): run from the
# repository root after the onnxruntime-gpu chunks were copied to /root/ortc (../shared/tools/gpu-prep).
# Prints raw ONNX Runtime CUDA (numpy I/O, IO binding, fp16) vs torch eager fp32/fp16 per batch size.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .gpu/setup.sh ] && [ -d /root/ortc ]; then
  # shellcheck disable=SC1091
  source .gpu/setup.sh
fi
python3 bench/gpu.py "$@"
