#!/usr/bin/env python3
"""Side-by-side training speed and memory: `mnv1 finetune --train-backbone` against Keras
(../shared/bench/keras_finetune.py: the same MobileNet V1, BatchNorm in train mode with momentum 0.99, a new
4-way head, SGD 0.005 / momentum 0.9, 88 training + 22 validation images, validation after every epoch).

For each variant, batch size and round it runs Keras, then mnv1, one after the other (so both see the same
load on a shared machine), and prints one JSON line per run and, at the end, a markdown table of the medians
over the rounds with the ratio mnv1 / Keras.

mnv1 trains on 110 random-noise PNGs of the model's size in 4 class folders (validation split 0.2 per class
gives 88 + 22, as Keras'), written once under --work; its weights are seeded random ones written by
`cargo run --release --example random_weights` (speed does not depend on the values). Epoch time: the median of
the epochs after the first, from manifest.json (each epoch's training steps and its validation pass, as Keras'
callback times `fit`'s epoch); peak RSS from /usr/bin/time -v. Keras' figures are what its script prints.

usage (from the repository root, after `cargo build --release`):
    python3 tools/bench_finetune.py --variants 025_128,100_224 --batches 16,32 --threads 2 --rounds 3
    python3 tools/bench_finetune.py --variants 050_160 --batches 16 --rounds 1 --python /tmp/tfenv/bin/python
Needs: numpy in the running Python; TensorFlow in --python (default /tmp/tfenv/bin/python); GNU time.
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import zlib

import numpy as np

VARIANTS = {"025_128": (0.25, 128), "050_160": (0.5, 160), "075_192": (0.75, 192), "100_224": (1.0, 224)}
KERAS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "keras_finetune.py")


def png(path, rgb):
    """A minimal 8-bit RGB PNG writer (no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def dataset(work, size):
    root = os.path.join(work, "data_%d" % size)
    if os.path.isdir(root):
        return root
    rng = np.random.default_rng(0)
    tmp = root + ".tmp"
    for i in range(110):
        d = os.path.join(tmp, "class%d" % (i % 4))
        os.makedirs(d, exist_ok=True)
        png(os.path.join(d, "%03d.png" % i), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    os.rename(tmp, root)
    return root


def weights(work, mult):
    path = os.path.join(work, "w_%s.safetensors" % mult)
    if not os.path.exists(path):
        subprocess.run(["cargo", "run", "--release", "-q", "--example", "random_weights", "--", str(mult), path],
                       check=True)
    return path


def run_keras(py, mult, size, batch, threads):
    out = subprocess.run([py, KERAS, "--alpha", str(mult), "--size", str(size), "--batch", str(batch),
                          "--threads", str(threads)], check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["s_per_epoch"], r["peak_rss_mb"]


def run_mnv1(binary, data, w, variant, batch, threads, epochs, work):
    out = os.path.join(work, "model_out")
    cmd = ["/usr/bin/time", "-v", binary, "finetune", data, "--variant", variant, "--weights", w,
           "--train-backbone", "--epochs", str(epochs), "--batch-size", str(batch), "--threads", str(threads),
           "--learning-rate", "0.005", "--momentum", "0.9", "--bn-momentum", "0.99", "--out", out, "-q"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("mnv1 failed:\n" + p.stderr)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    t = m["training"]
    assert (t["train_images"], t["validation_images"]) == (88, 22), (t["train_images"], t["validation_images"])
    secs = [e["seconds"] for e in m["history"]]
    return statistics.median(secs[1:] if len(secs) > 1 else secs), rss_kb / 1024, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="025_128,100_224")
    ap.add_argument("--batches", default="16,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--python", default="/tmp/tfenv/bin/python")
    ap.add_argument("--mnv1", default="target/release/mnv1")
    ap.add_argument("--work", default="/tmp/mnv1-bench-finetune")
    ap.add_argument("--skip-keras", action="store_true", help="mnv1 only (e.g. for the epochs-1-vs-10 check)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    rows = []
    for variant in a.variants.split(","):
        mult, size = VARIANTS[variant]
        data, w = dataset(a.work, size), weights(a.work, mult)
        for batch in map(int, a.batches.split(",")):
            k_t, k_m, m_t, m_m = [], [], [], []
            for r in range(a.rounds):
                if not a.skip_keras:
                    t, mem = run_keras(a.python, mult, size, batch, a.threads)
                    k_t.append(t)
                    k_m.append(mem)
                    print(json.dumps({"engine": "keras", "variant": variant, "batch": batch, "round": r,
                                      "s_per_epoch": t, "peak_rss_mb": mem}), flush=True)
                t, mem, secs = run_mnv1(a.mnv1, data, w, variant, batch, a.threads, a.epochs, a.work)
                m_t.append(t)
                m_m.append(mem)
                print(json.dumps({"engine": "mnv1", "variant": variant, "batch": batch, "round": r,
                                  "s_per_epoch": round(t, 4), "epochs_s": [round(s, 3) for s in secs],
                                  "peak_rss_mb": round(mem, 1)}), flush=True)
            rows.append((variant, batch, m_t, m_m, k_t, k_m))
    print("\n| variant | batch | mnv1 s/epoch | Keras s/epoch | time ratio | mnv1 images/s | Keras images/s "
          "| mnv1 peak RSS MB | Keras peak RSS MB | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant, batch, m_t, m_m, k_t, k_m in rows:
        mt, mm = statistics.median(m_t), statistics.median(m_m)
        if k_t:
            kt, km = statistics.median(k_t), statistics.median(k_m)
            print("| %s | %d | %.3f | %.3f | %.2f | %.0f | %.0f | %.0f | %.0f | %.2f |" % (
                variant, batch, mt, kt, mt / kt, 88 / mt, 88 / kt, mm, km, mm / km))
        else:
            print("| %s | %d | %.3f | - | - | %.0f | - | %.0f | - | - |" % (variant, batch, mt, 88 / mt, mm))


if __name__ == "__main__":
    main()
