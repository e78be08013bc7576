#!/usr/bin/env bash
# Prepare the service's own dependencies for the GPU test machine (Python 3.12 with torch, numpy, pillow,
# httpx, but no fastapi/uvicorn/pydantic/scipy): wheels for cp312 manylinux x86_64, packed and split into
# chunks of <= 30 MB under .gpu/s1 .. .gpu/sN (ignored by git) - one chunk per transfer, beside the
# repository's own copy - plus .gpu/service-setup.sh, which bench/gpu.sh sources when it is there.
# Usage, from the project's root, after ../shared/tools/gpu-prep:  bash bench/gpu_prep_service.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu/s[0-9]* .gpu/svc && mkdir -p .gpu/svc
# the serving dependencies of pyproject.toml, less what the machine has (numpy, pillow, httpx)
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/svc \
  "fastapi>=0.110,<1" "uvicorn[standard]>=0.29,<1" "pydantic>=2.6,<3" "pydantic-settings>=2.2,<3" \
  "python-multipart>=0.0.32" "prometheus-client>=0.20,<1" "scipy>=1.11,<2" tifffile "h5py>=3.9,<4" \
  "netCDF4>=1.6,<2" "fastapi-standalone-docs>=0.3,<1" "imagecodecs>=2024.1" "pillow-heif>=0.18,<1.9"
rm -f .gpu/svc/numpy-* .gpu/svc/pillow-* .gpu/svc/httpx-* .gpu/svc/httpcore-*
tar -C .gpu -cf .gpu/svc.tar svc && rm -rf .gpu/svc
split -b 30000000 -d -a 1 .gpu/svc.tar .gpu/svcpart. && rm .gpu/svc.tar
n=0
for p in .gpu/svcpart.*; do n=$((n+1)); mkdir -p ".gpu/s$n"; mv "$p" ".gpu/s$n/"; done
cat > .gpu/service-setup.sh <<'EOS'
# sourced by bench/gpu.sh on the GPU machine once every chunk was copied to /root/svcc
cat /root/svcc/svcpart.* | tar -C /tmp -xf -
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/svcsite /tmp/svc/*.whl
export PYTHONPATH=/tmp/svcsite${PYTHONPATH:+:$PYTHONPATH}
EOS
echo "Prepared $n chunks in .gpu/s1 .. .gpu/s$n and .gpu/service-setup.sh."
echo "On the GPU machine: bring each chunk to /root/svcc/ (one transfer each, e.g. carry .gpu/sK and"
echo "'mkdir -p /root/svcc && cp .gpu/sK/* /root/svcc/'), then run bench/gpu.sh."
