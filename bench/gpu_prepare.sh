#!/usr/bin/env bash
# Run HERE (the machine with pip), from the repo root, before a device call:
# the shared Unsloth/TRL wheels, the wheels of Stillroom's own runtime and test
# dependencies the CUDA image lacks, and the baseline script, into git-excluded
# folders that the call carries: `.whl` and `.gpu-shared`.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash ../shared/gpu/fetch-wheels.sh >/dev/null
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5 \
  typing_extensions==4.16.0 tomli_w==1.2.0 nvidia_ml_py==13.615.71 rich==15.0.0 pygments==2.21.0 \
  markdown_it_py==4.3.0 mdurl==0.1.2 pytest==8.4.2 pluggy==1.7.0 iniconfig==2.3.1 gguf==0.19.0
mkdir -p .gpu-shared
cp ../shared/gpu/baseline_unsloth.py .gpu-shared/
grep -qxF '/.gpu-shared/' .git/info/exclude || echo '/.gpu-shared/' >> .git/info/exclude
du -sh .whl .gpu-shared
