#!/usr/bin/env bash
# Peak RSS of `mnv1 embed` over N inputs, per output format (issue 15: memory must not grow with
# the number of images). Inputs: N small PNGs packed into tar shards of 10,000 (made here with
# python3's standard library), so 100,000 inputs cost ~150 MB of disk, not 100,000 files.
#
#   tools/scale_rss.sh BIN WEIGHTS VARIANT WORKDIR N [FORMAT...]
#   e.g. cargo run --release --example random_weights -- 1.0 /tmp/w100.safetensors
#        tools/scale_rss.sh target/release/mnv1 /tmp/w100.safetensors 100_224 /tmp/rss 10000 npy parquet
#
# Prints one line per format: N, format, peak RSS (MB, GNU time's maximum resident set size),
# wall seconds, output bytes.
set -euo pipefail
bin=$1 weights=$2 variant=$3 work=$4 n=$5
shift 5
formats=("${@:-npy npz jsonl parquet}")
# shellcheck disable=SC2206
formats=(${formats[*]})
mkdir -p "$work/shards-$n"
if [ ! -e "$work/shards-$n/.done" ]; then
  python3 - "$work/shards-$n" "$n" <<'PY'
import io, struct, sys, tarfile, zlib
out, n = sys.argv[1], int(sys.argv[2])
def png(seed, w=32, h=32):
    rows = b"".join(b"\0" + bytes(((x * 7 + y * 3 + seed) % 256, (x + seed * 5) % 256, (y + seed) % 256)[c]
                                  for x in range(w) for c in range(3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
per = 10000
for s in range((n + per - 1) // per):
    with tarfile.open(f"{out}/{s:05d}.tar", "w", format=tarfile.GNU_FORMAT) as t:
        for i in range(s * per, min(n, (s + 1) * per)):
            data = png(i)
            info = tarfile.TarInfo(f"{i:08d}.png"); info.size = len(data); info.mtime = 0
            t.addfile(info, io.BytesIO(data))
PY
  touch "$work/shards-$n/.done"
fi
for f in "${formats[@]}"; do
  out="$work/out-$n.$f"
  rm -f "$out" "$out.paths.txt"
  /usr/bin/time -f "%M %e" -o "$work/time-$n-$f" \
    "$bin" embed "$work/shards-$n"/*.tar --variant "$variant" --weights "$weights" --out "$out" 2>/dev/null
  read -r kb secs < "$work/time-$n-$f"
  echo "$n $f $((kb / 1024)) MB ${secs} s $(stat -c %s "$out") bytes"
done
