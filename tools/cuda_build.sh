#!/usr/bin/env bash
# tools/cuda_build.sh: build `mnv1 --features cuda` on a machine with no GPU and no CUDA toolkit, and pack it
# with the real model and inputs into .device/ for tools/device_check.sh on a GPU machine. Not used by CI.
#
# The CUDA 13.0 pieces candle 0.11 needs come from pinned PyPI wheels (sha256-checked), unpacked into
# CUDA_DIR/site with CUDA_HOME = CUDA_DIR/site/nvidia/cu13. The wheels hold no libcuda (that is the GPU
# driver's), so a link-time stub libcuda.so (SONAME libcuda.so.1) is generated from the driver functions
# cudarc declares; on the GPU machine the binary binds to the real driver.
#
# Needs: x86-64 Linux, python3 with pip and network to PyPI (or WHEELS_DIR already holding the wheels), cc,
# strip, gzip, the Rust toolchain with this repo's crates fetched (`cargo fetch`), ~2 GB free under CUDA_DIR
# and ~2 GB for the target, and the real test data (../shared/testdata; never copied into tracked paths).
# The build took 25 min on 2 cores.
#
# Run from anywhere:  bash tools/cuda_build.sh [--no-build] [CUDA_DIR [DATA]]
#   CUDA_DIR     toolkit folder (or env CUDA_DIR; default /tmp/cuda13)
#   DATA         the real test data (or env DATA; default ../shared/testdata beside the repo)
#   --no-build   stop before cargo: toolkit, stub, .device inputs and an nvcc smoke test only
# Env: WHEELS_DIR (default CUDA_DIR/whl; wheels found there are not downloaded again), CUDA_COMPUTE_CAP
#   (default 90: H100/H200), CARGO_TARGET_DIR (default /tmp/cuda-target), CARGO_BUILD_JOBS and
#   CUDAFORGE_THREADS (nvcc jobs) if memory is short (1 and 1 were used on 2 cores / 23 GB).
# Output: .device/{mnv1.gz, mobilenet_v1_0.25_128.tflite, cup.npy, banana.npy, *_0.25_128.output}; then on
#   the GPU machine: `bash tools/device_check.sh` with carry [".device"]. CUDA_DIR/env.sh repeats the env.
set -euo pipefail

BUILD=1
if [ "${1:-}" = --no-build ]; then BUILD=0; shift; fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
CUDA_DIR=${1:-${CUDA_DIR:-/tmp/cuda13}}
DATA=${2:-${DATA:-$REPO/../shared/testdata}}
WHEELS_DIR=${WHEELS_DIR:-$CUDA_DIR/whl}
mkdir -p "$CUDA_DIR" "$WHEELS_DIR"
CUDA_DIR=$(cd "$CUDA_DIR" && pwd) WHEELS_DIR=$(cd "$WHEELS_DIR" && pwd)
[ -d "$DATA" ] || { echo "no test data folder $DATA" >&2; exit 1; }
DATA=$(cd "$DATA" && pwd)
[ "$(uname -m)" = x86_64 ] || { echo "x86-64 only (the wheels and the GPU machine are x86-64)" >&2; exit 1; }

# --- .device/: ignored, holds what the GPU machine needs -------------------------------------------
cd "$REPO"
EXCLUDE=$(git rev-parse --git-path info/exclude)
grep -qxF '/.device/' "$EXCLUDE" 2>/dev/null || { mkdir -p "$(dirname "$EXCLUDE")"; echo '/.device/' >> "$EXCLUDE"; }
mkdir -p .device
W=mobilenet_v1_0.25_128.tflite
if [ ! -f "$DATA/weights/$W" ] || [ ! -d "$DATA/golden" ]; then echo "no test data at $DATA (weights/, golden/)" >&2; exit 1; fi
echo "af4969dc5cc4ecd92f46d2c125d2c9a692fec146bd701076aa86b4c746428dbc  $DATA/weights/$W" | sha256sum -c --quiet
cp -f "$DATA/weights/$W" "$DATA"/golden/{cup,banana}_0.25_128.output .device/
# The golden inputs are raw float32 NHWC in [-1,1]; mnv1 reads .npy images in [0,1], so (x+1)/2, exact here.
python3 - "$DATA/golden" .device <<'PY'
import array, sys
src, dst = sys.argv[1:]
for name in ("cup", "banana"):
    x = array.array("f"); x.frombytes(open(f"{src}/{name}_128.input", "rb").read())
    assert len(x) == 128 * 128 * 3 and sys.byteorder == "little"
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 128, 128, 3), }".ljust(117) + "\n"
    with open(f"{dst}/{name}.npy", "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode())
        f.write(array.array("f", ((v + 1) / 2 for v in x)).tobytes())
PY

# --- the toolkit wheels ------------------------------------------------------------------------------
# name==version, then the exact file and sha256 pip fetched on x86-64 Linux (2025 releases).
WHEELS='
nvidia-cuda-nvcc==13.0.88 nvidia_cuda_nvcc-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-cuda-crt==13.0.88 nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-nvvm==13.0.88 nvidia_nvvm-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvidia-cuda-runtime==13.0.96 nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cccl==13.0.85 nvidia_cuda_cccl-13.0.85-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649
nvidia-cublas==13.0.2.14 nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl 0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c
nvidia-curand==10.4.0.35 nvidia_curand-10.4.0.35-py3-none-manylinux_2_27_x86_64.whl 1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc
nvidia-cuda-nvrtc==13.0.88 nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
'
SITE=$CUDA_DIR/site
CUDA_HOME=$SITE/nvidia/cu13
while read -r pin file sum; do
  [ -n "$pin" ] || continue
  [ -f "$WHEELS_DIR/$file" ] || python3 -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS_DIR" "$pin"
  echo "$sum  $WHEELS_DIR/$file" | sha256sum -c --quiet
  if ! grep -qxF "$file" "$SITE/.unpacked" 2>/dev/null; then
    # python's zipfile drops the mode bits, so put back the executable ones (nvcc, ptxas, cicc, ...).
    nice -n 19 python3 - "$WHEELS_DIR/$file" "$SITE" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        p = z.extract(i, sys.argv[2])
        if (i.external_attr >> 16) & 0o111:
            os.chmod(p, 0o755)
PY
    echo "$file" >> "$SITE/.unpacked"
  fi
done <<< "$WHEELS"

# lib64/ as a toolkit has it (cudarc and nvcc search lib64 and lib64/stubs): links into lib/, plus the
# unversioned libX.so names the linker's -lX needs.
mkdir -p "$CUDA_HOME/lib64/stubs"
for f in "$CUDA_HOME"/lib/*; do
  [ -f "$f" ] || continue
  b=$(basename "$f")
  ln -sfn "../lib/$b" "$CUDA_HOME/lib64/$b"
  case $b in
    *.alt.* | *.so.*.*) ;;                                  # nvrtc's alternates and builtins: no -l name
    lib*.so.[0-9]*) ln -sfn "$b" "$CUDA_HOME/lib64/${b%%.so.*}.so" ;;
  esac
done

# --- the libcuda link stub ----------------------------------------------------------------------------
# One empty function per driver entry point cudarc's bindings declare (its `dynamic-linking` feature, which
# candle turns on, makes each an extern "C" reference to libcuda).
CUDARC_VER=$(awk '/^name = "cudarc"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
find_cudarc() { find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -name "cudarc-$CUDARC_VER" 2>/dev/null | head -1 || true; }
CUDARC=$(find_cudarc)
if [ -z "$CUDARC" ]; then cargo fetch --locked; CUDARC=$(find_cudarc); fi
grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$CUDARC/src/driver/sys/mod.rs" | sed 's/^pub unsafe fn //' | LC_ALL=C sort -u |
  sed 's/.*/void &(void){}/' > "$CUDA_DIR/libcuda_stub.c"
N=$(wc -l < "$CUDA_DIR/libcuda_stub.c")
[ "$N" -gt 400 ] || { echo "only $N driver symbols found in $CUDARC" >&2; exit 1; }
cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$CUDA_HOME/lib64/stubs/libcuda.so" "$CUDA_DIR/libcuda_stub.c"
echo "libcuda stub: $N symbols from cudarc $CUDARC_VER"

# --- environment, and a smoke test of the compiler -----------------------------------------------------
export CUDA_HOME PATH=$CUDA_HOME/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/cuda-target}
{ echo "export CUDA_HOME=$CUDA_HOME PATH=$CUDA_HOME/bin:\$PATH CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
  echo "export CARGO_TARGET_DIR=$CARGO_TARGET_DIR"; } > "$CUDA_DIR/env.sh"
nvcc --version | tail -2
echo '__global__ void k(float *x) { x[threadIdx.x] *= 2.f; }' > "$CUDA_DIR/smoke.cu"
nvcc -arch="sm_$CUDA_COMPUTE_CAP" -c -o "$CUDA_DIR/smoke.o" "$CUDA_DIR/smoke.cu"
echo "toolkit ready: source $CUDA_DIR/env.sh"
[ "$BUILD" = 1 ] || { echo "--no-build: stopping before cargo"; exit 0; }

# --- build and pack -----------------------------------------------------------------------------------
nice -n 19 cargo build --release --features cuda --bin mnv1
strip -o "$CUDA_DIR/mnv1.stripped" "$CARGO_TARGET_DIR/release/mnv1"
nice -n 19 gzip -9 -c "$CUDA_DIR/mnv1.stripped" > .device/mnv1.gz
# Everything but the driver should resolve against the wheels' libraries (the stub stands in for libcuda).
mkdir -p "$CUDA_DIR/stub1" && ln -sfn "$CUDA_HOME/lib64/stubs/libcuda.so" "$CUDA_DIR/stub1/libcuda.so.1"
LD_LIBRARY_PATH="$CUDA_DIR/stub1:$CUDA_HOME/lib64" ldd "$CUDA_DIR/mnv1.stripped" | grep -E 'cuda|cublas|curand|nvrtc|not found'
echo "needs $(objdump -T "$CUDA_DIR/mnv1.stripped" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1) or newer"
ls -la .device && du -sh .device
