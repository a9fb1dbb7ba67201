#!/usr/bin/env python3
"""Post-training int8 against fp32 on the labelled photos: top-1 agreement and accuracy.

Runs `mnv1 classify --top-k 1 --format jsonl` twice on the photos of DIR (labels.tsv: file,
label index): fp32, and `--precision int8 --calibrate` on a calibration split, then prints the
agreement of the two top-1s and each one's accuracy, on the photos outside the calibration split
and on all of them. The split is every photo (`--calibrate-on all`), or the first / second half
in labels.tsv order (`first-half`, `second-half`), linked into a temporary directory.

    cargo build --release
    python3 tools/ptq_top1.py ../shared/testdata/imagenet-sample-200 \\
        --weights ../shared/testdata/weights/mobilenet_v1_0.25_128.tflite --calibrate-on first-half
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def top1(mnv1, weights, photos, extra):
    out = subprocess.run([mnv1, "classify", "--weights", weights, "--variant", "025_128", "--top-k", "1",
                          "--format", "jsonl", *extra, *photos], check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    rows = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        rows[os.path.basename(r["path"])] = r["predictions"][0]["index"]
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("photos")
    ap.add_argument("--weights", default="../shared/testdata/weights/mobilenet_v1_0.25_128.tflite")
    ap.add_argument("--mnv1", default=os.environ.get("CARGO_TARGET_DIR", "target") + "/release/mnv1")
    ap.add_argument("--calibrate-on", choices=["all", "first-half", "second-half"], default="first-half")
    args = ap.parse_args()
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(args.photos, "labels.tsv"))]
    rows = [(r[0], int(r[1])) for r in rows if r and r[0].lower().endswith((".jpeg", ".jpg"))]
    half = len(rows) // 2
    calib = {"all": rows, "first-half": rows[:half], "second-half": rows[half:]}[args.calibrate_on]
    photos = [os.path.join(args.photos, n) for n, _ in rows]
    with tempfile.TemporaryDirectory() as tmp:
        for name, _ in calib:
            os.symlink(os.path.abspath(os.path.join(args.photos, name)), os.path.join(tmp, name))
        fp32 = top1(args.mnv1, args.weights, photos, [])
        int8 = top1(args.mnv1, args.weights, photos, ["--precision", "int8", "--calibrate", tmp])
    calib_names = {n for n, _ in calib}
    held_out = [(n, l) for n, l in rows if n not in calib_names]
    for what, subset in [("held out", held_out), ("all", rows)]:
        if not subset:
            continue
        n = len(subset)
        agree = sum(fp32[f] == int8[f] for f, _ in subset)
        acc32 = sum(fp32[f] == l for f, l in subset)
        acc8 = sum(int8[f] == l for f, l in subset)
        print(f"{what} ({n} photos, calibrated on {args.calibrate_on}): agreement {agree}/{n} = "
              f"{100 * agree / n:.1f}%, top-1 fp32 {acc32}/{n} = {100 * acc32 / n:.1f}%, "
              f"int8 {acc8}/{n} = {100 * acc8 / n:.1f}%")


if __name__ == "__main__":
    main()
