#!/usr/bin/env python3
"""Checks the Spark job's outputs against the shards and against single-process mnv1.

    python3 examples/spark/check_spark.py '/tmp/shards/*.tar' --out /tmp/spark-out \\
        --mnv1 target/release/mnv1 --weights examples/data/mobilenet_v1_0.25_128.tflite --variant 025_128

1. Every image member of every shard (read here with Python's tarfile) appears exactly once in
   OUT/embed/*.parquet and in OUT/classify/*.parquet, as "SHARD.tar/MEMBER" with the shard path the
   Spark job gave mnv1 (absolute), each shard's rows in archive order in OUT/<mode>/<stem>.parquet,
   and nothing else appears.
2. The features equal those of one process, `mnv1 embed SHARDS... --out WORK/single.npy`, bit for
   bit (float32 compared as uint32, matched by path).
3. The predictions equal those of one process, `mnv1 classify SHARDS... --out WORK/single.parquet`:
   the same indices, labels, probabilities and logits, bit for bit, in rank order.

Exits 1 on any mismatch (each listed), 0 when all holds. Needs numpy and pyarrow.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pyarrow.parquet as pq

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def image_members(shard):
    with tarfile.open(shard, "r|") as tar:  # a stream, as mnv1 reads it
        return [m.name for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_EXT)]


def read_paths_txt(p):
    lines = open(p, encoding="utf-8").read().split("\n")[:-1]
    return [json.loads(l) if l.startswith('"') else l for l in lines]


def features_of(table):
    col = table.column("features").combine_chunks()
    d = col.type.list_size
    vals = col.values.to_numpy(zero_copy_only=False)
    if vals.dtype != np.float32:
        raise SystemExit(f"features are {vals.dtype}, not float32")
    return vals.reshape(len(col), d)


def predictions_of(table):
    return table.column("predictions").to_pylist()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="+", help="the same shard globs the Spark job was given")
    ap.add_argument("--out", required=True, help="the Spark job's output directory")
    ap.add_argument("--mnv1", required=True, help="the mnv1 binary for the single-process run")
    ap.add_argument("--weights")
    ap.add_argument("--variant", default="025_128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-k", "--top-k", type=int, default=5)
    ap.add_argument("--work", help="where the single-process outputs go (default: OUT/single)")
    args = ap.parse_args()

    shards = sorted({os.path.abspath(h) for p in args.shards for h in glob.glob(p)})
    if not shards:
        raise SystemExit(f"no shards match {args.shards}")
    work = args.work or os.path.join(args.out, "single")
    os.makedirs(work, exist_ok=True)
    errors = []

    def err(msg):
        errors.append(msg)
        if len(errors) <= 30:
            print("MISMATCH: " + msg, file=sys.stderr)

    expected = []  # every image, in shard then archive order
    per_shard = {}
    for s in shards:
        names = [f"{s}/{m}" for m in image_members(s)]
        per_shard[s] = names
        expected += names
    if len(set(expected)) != len(expected):
        err("the shards themselves hold a duplicate member name")
    print(f"{len(shards)} shards, {len(expected)} images")

    # 1. Every image exactly once, per-shard files in archive order.
    spark = {}
    for mode in ("embed", "classify"):
        seen = {}
        for s in shards:
            f = os.path.join(args.out, mode, os.path.basename(s)[:-4] + ".parquet")
            if not os.path.exists(f):
                err(f"{mode}: {f} is missing")
                continue
            t = pq.read_table(f)
            paths = t.column("path").to_pylist()
            if paths != per_shard[s]:
                i = next((i for i, (a, b) in enumerate(zip(paths, per_shard[s])) if a != b),
                         min(len(paths), len(per_shard[s])))
                err(f"{mode}: {f} has {len(paths)} rows, not the shard's {len(per_shard[s])} images in "
                    f"archive order (first difference at row {i})")
            vals = features_of(t) if mode == "embed" else predictions_of(t)
            for i, p in enumerate(paths):
                if p in seen:
                    err(f"{mode}: {p} appears more than once")
                seen[p] = vals[i]
        extra = set(seen) - set(expected)
        missing = set(expected) - set(seen)
        if extra:
            err(f"{mode}: {len(extra)} paths that are no image of the shards, e.g. {sorted(extra)[:3]}")
        if missing:
            err(f"{mode}: {len(missing)} images missing, e.g. {sorted(missing)[:3]}")
        spark[mode] = seen
        print(f"{mode}: {len(seen)} distinct paths in the Spark outputs")

    # 2. Features against one process, bit for bit.
    base = [args.mnv1]
    common = ["--variant", args.variant, "--threads", str(args.threads)]
    if args.weights:
        common += ["--weights", args.weights]
    npy = os.path.join(work, "single.npy")
    r = subprocess.run(base + ["embed", *shards, "--out", npy, *common])
    if r.returncode != 0:
        err(f"single-process embed exited {r.returncode}")
    else:
        feats = np.load(npy)
        paths = read_paths_txt(npy + ".paths.txt")
        if feats.dtype != np.float32 or feats.ndim != 2 or feats.shape[0] != len(paths):
            err(f"single.npy is {feats.dtype} {feats.shape} with {len(paths)} paths")
        if paths != expected:
            err("single-process embed paths are not the shards' images in order")
        same = 0
        for i, p in enumerate(paths):
            a = spark["embed"].get(p)
            if a is None:
                continue
            if a.shape != feats[i].shape or not np.array_equal(a.view(np.uint32), feats[i].view(np.uint32)):
                diff = float(np.max(np.abs(a - feats[i]))) if a.shape == feats[i].shape else float("nan")
                err(f"features of {p} differ from the single process (max |diff| {diff:g})")
            else:
                same += 1
        print(f"embed: {same} of {len(paths)} feature vectors (D={feats.shape[1]}) equal the single process bit for bit")

    # 3. Predictions against one process, bit for bit.
    single_pq = os.path.join(work, "single_classify.parquet")
    r = subprocess.run(base + ["classify", *shards, "--out", single_pq, "-k", str(args.top_k), *common])
    if r.returncode != 0:
        err(f"single-process classify exited {r.returncode}")
    else:
        t = pq.read_table(single_pq)
        paths = t.column("path").to_pylist()
        preds = predictions_of(t)
        if paths != expected:
            err("single-process classify paths are not the shards' images in order")
        same = 0
        for p, want in zip(paths, preds):
            got = spark["classify"].get(p)
            if got is None:
                continue
            if len(want) != args.top_k:
                err(f"{p}: {len(want)} predictions, not {args.top_k}")
            if got != want:  # Python floats from float32: equal iff the same bits (NaN aside)
                err(f"predictions of {p} differ: {got[:1]} vs {want[:1]}")
            else:
                same += 1
            probs = [x["probability"] for x in want]
            if probs != sorted(probs, reverse=True):
                err(f"{p}: predictions not in rank order")
        print(f"classify: {same} of {len(paths)} prediction lists equal the single process")

    if errors:
        print(f"FAILED: {len(errors)} mismatches", file=sys.stderr)
        return 1
    print("OK: every image exactly once; Spark outputs equal single-process mnv1 bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
