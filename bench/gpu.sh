#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine (see ../shared/GPU.md): run from the
# repository root after the onnxruntime-gpu chunks were copied to /root/ortc (../shared/tools/gpu-prep)
# and, for the end-to-end part, the service's dependencies to /root/svcc (bench/gpu_prep_service.sh).
# 1. bench/gpu.py: raw ONNX Runtime CUDA (numpy I/O, IO binding, the service's runner, fp16) vs torch
#    eager fp32/fp16 per batch size;
# 2. bench/gpu_http.py: ResNet-50 224x224 JPEG end to end, ConvServe --workers N vs plain FastAPI, on CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .gpu/setup.sh ] && [ -d /root/ortc ]; then
  # shellcheck disable=SC1091
  source .gpu/setup.sh
fi
if [ -f .gpu/service-setup.sh ] && [ -d /root/svcc ] && [ ! -d /tmp/svcsite ]; then
  # shellcheck disable=SC1091
  source .gpu/service-setup.sh
elif [ -d /tmp/svcsite ]; then
  export PYTHONPATH=/tmp/svcsite${PYTHONPATH:+:$PYTHONPATH}
fi
python3 bench/gpu.py "$@"
if python3 -c "import fastapi, uvicorn, pydantic_settings, scipy, h5py, netCDF4, tifffile" 2>/dev/null; then
  python3 bench/gpu_http.py
else
  echo "end to end skipped: the service's dependencies are missing (bench/gpu_prep_service.sh prepares them)"
fi
