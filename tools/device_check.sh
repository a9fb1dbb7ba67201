#!/usr/bin/env bash
# tools/device_check.sh: the GPU-machine half of tools/cuda_build.sh. Checks mnv1's `cuda` feature on a real
# GPU: CUDA vs CPU agreement and TensorFlow's golden softmax on the real mobilenet_v1_0.25_128 model, then
# bench timings on both devices. Not used by CI.
#
# Needs: .device/ as tools/cuda_build.sh leaves it (mnv1.gz, the .tflite, cup/banana .npy and .output), an
# NVIDIA driver, and CUDA 13 cublas / curand / cudart / nvrtc from the machine's pip `nvidia-*` wheels
# (the device image has them), python3 (standard library only).
# Run from the repo root on the GPU machine:  bash tools/device_check.sh
#   (device tool: command "bash tools/device_check.sh", carry [".device"], timeout_s ~ 420).
# Writes to $OUT (default /tmp/out), 6 files: log.txt, classify_{cuda,cpu}_{top5,all}.json, bench.jsonl.
# Each mnv1 run is capped at CHECK_TIMEOUT seconds (default 45; 9 runs stay under the device's 10 minutes).
cd "$(dirname "$0")/../.device" || { echo "no .device/: run tools/cuda_build.sh and carry .device"; exit 1; }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
T=${CHECK_TIMEOUT:-45}
export MNV1_OFFLINE=1 MNV1_CACHE=/tmp/mnv1-cache   # bench without --weights then uses random weights
# The runtime libraries (cublas, cublasLt, curand, nvrtc, cudart) from the image's pip nvidia wheels.
LIBS=$(python3 - <<'PY'
import glob, os, site, sys
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    dirs.update(glob.glob(os.path.join(sp, 'nvidia', '*', 'lib')))
print(':'.join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${LIBS:+$LIBS:}/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi -L
BIN=$(mktemp -d)/mnv1
if ! gunzip -c mnv1.gz > "$BIN"; then echo "unpack failed"; exit 1; fi
chmod +x "$BIN"
echo "== ldd"; ldd "$BIN" | grep -E 'cuda|cublas|curand|nvrtc|not found'
for l in $(ldd "$BIN" | awk '/not found/{print $1}'); do echo "searching $l"; find / -xdev -name "$l" 2>/dev/null | head -3; done

W=mobilenet_v1_0.25_128.tflite
run() { echo "== $*"; timeout "$T" "$@"; echo "rc=$?"; }
for dev in cuda cpu; do
  run "$BIN" classify --device $dev --variant 025_128 --weights $W cup.npy banana.npy --format json --top-k 5 -o "$OUT/classify_${dev}_top5.json"
  run "$BIN" classify --device $dev --variant 025_128 --weights $W cup.npy banana.npy --format json --top-k 1001 -o "$OUT/classify_${dev}_all.json"
done
# CUDA vs CPU, and each vs TensorFlow's softmax (the .output files: raw float32 [1001]; ~2e-6 is faithful).
python3 - "$OUT" <<'PY'
import array, json, os, sys
o = sys.argv[1]
res = {d: json.load(open(f'{o}/classify_{d}_all.json')) for d in ('cuda', 'cpu') if os.path.exists(f'{o}/classify_{d}_all.json')}
for dev, imgs in res.items():
    for r in imgs:
        tf = array.array('f'); tf.frombytes(open(os.path.basename(r['path'])[:-4] + '_0.25_128.output', 'rb').read())
        d = {x['index']: x['probability'] for x in r['predictions']}
        print(f"{dev} {r['path']}: max|dprob| vs TF={max(abs(d[i] - tf[i]) for i in range(1001)):.3g} top5={[x['index'] for x in r['predictions'][:5]]}")
for a, b in zip(res.get('cuda', []), res.get('cpu', [])):
    da = {x['index']: x for x in a['predictions']}; db = {x['index']: x for x in b['predictions']}
    dp = max(abs(da[i]['probability'] - db[i]['probability']) for i in db)
    dl = max(abs(da[i]['logit'] - db[i]['logit']) for i in db)
    print(f"cuda vs cpu {a['path']}: max|dprob|={dp:.3g} max|dlogit|={dl:.3g}")
PY
B="$OUT/bench.jsonl"; : > "$B"
bench() { echo "== bench $*"; r=$(timeout "$T" "$BIN" bench "$@" --json); rc=$?; echo "$r"; echo "rc=$rc"; printf '{"args":"%s","rc":%d,"result":%s}\n' "$*" $rc "${r:-null}" >> "$B"; }
bench --device cuda --variant 100_224 --batch 1 --runs 50
bench --device cuda --variant 100_224 --batch 32 --runs 50
bench --device cuda --variant 025_128 --weights $W --batch 1 --runs 50
bench --device cpu --variant 100_224 --batch 1 --runs 20
bench --device cpu --variant 100_224 --batch 32 --runs 10
echo "done"
