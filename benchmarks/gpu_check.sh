# Device command (run from the repo root on a lent GPU machine, as `bash benchmarks/gpu_check.sh
# [engine] [scoring] [deep]`, carrying .whl). The device image has torch, scipy, scikit-image but not
# SimpleITK, edt, cc3d, fill_voids, nibabel, blosc2 or nnU-Net: build the archive here first
# (python 3.12 wheels of the versions in .venv, unzipped into one folder, pydicom left out;
# SimpleITK's wheel alone is 53 MB, xz brings everything to 42 MB under the 64 MiB transfer limit):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 ... -d .whl
#   for w in .whl/*.whl; do unzip -q -o $w -d /tmp/site312; done; tar cJf .whl/site.tar.xz -C /tmp/site312 .
set -o pipefail
mkdir -p /tmp/site && tar xJf .whl/site.tar.xz -C /tmp/site || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 nnUNet_raw=/tmp nnUNet_preprocessed=/tmp nnUNet_results=/tmp
nvidia-smi -L
# the CUDA tests of the parts asked for (engine, scoring; all parts by default)
tests=""
for p in "${@:-engine scoring deep}"; do case " $p " in
  *" engine "*) tests="$tests Testing/test_engine.py";; esac; case " $p " in
  *" scoring "*) tests="$tests Testing/test_planning_torch.py";; esac; done
[ -n "$tests" ] && python3 -m pytest -q -p no:cacheprovider -m gpu $tests 2>&1 | tail -15 | tee $OUT/pytest_gpu.txt
timeout ${GPU_CHECK_LIMIT:-420} python3 benchmarks/gpu_check.py "$@" 2>&1 | tee $OUT/gpu_check.log | grep -v Warning | tail -40
