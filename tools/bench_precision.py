#!/usr/bin/env python3
"""mnv1's three precisions beside TensorFlow Lite (XNNPACK) on the same quantized file, in one
session: the table of bench/README.md "Precisions".

For each variant given as VARIANT=FLOAT,QUANT (FLOAT: float weights, or `random`; QUANT: a
quantized .tflite of the same variant), each batch and thread count, it runs
  mnv1 bench --precision fp32 | bf16 on FLOAT, mnv1 bench on QUANT (int8),
  tools/bench_quant_peer.py on QUANT (TFLite 2.x with its XNNPACK delegate),
back to back, for --rounds rounds, and prints the median of the rounds' medians (ms per batch)
with the ratios int8 / fp32 speed-up and mnv1 int8 / TFLite speed-up. bf16 is skipped (a dash)
where the CPU lacks AVX512_BF16.

needs: target/release/mnv1 and /tmp/tfenv (tools/README.md). Not run by CI.
run:   python3 tools/bench_precision.py \\
           --variant 025_128=../shared/testdata/weights/mobilenet_v1_0.25_128.tflite,../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite \\
           --variant 100_224=random,/tmp/int8_100_224.tflite --batch 1,32 --threads 1,2 --rounds 3
"""
import argparse
import json
import statistics
import subprocess
import sys


def mnv1(binary, variant, weights, precision, batch, threads, runs):
    cmd = [binary, "bench", "--variant", variant, "--batch", str(batch), "--threads", str(threads),
           "--runs", str(runs), "--json", "-q"]
    if weights != "random":
        cmd += ["--weights", weights]
    if precision:
        cmd += ["--precision", precision]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  {' '.join(cmd)}: {r.stderr.strip()}", file=sys.stderr)
        return None
    return json.loads(r.stdout)["ms_median"]


def tflite(python, model, batch, threads, runs):
    out = subprocess.run([python, "tools/bench_quant_peer.py", model, "--batch", str(batch),
                          "--threads", str(threads), "--runs", str(runs)],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return next(r["median_ms"] for r in rows if r["engine"] == "tflite-xnnpack")


def fmt(v):
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", action="append", required=True, metavar="V=FLOAT,QUANT")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mnv1", default="target/release/mnv1")
    ap.add_argument("--python", default="/tmp/tfenv/bin/python")
    a = ap.parse_args()
    print("| | fp32 | bf16 | int8 | TFLite XNNPACK int8 | int8 / fp32 speed-up | mnv1 int8 / TFLite speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in a.variant:
        variant, files = spec.split("=", 1)
        flt, quant = files.split(",", 1)
        for batch in map(int, a.batch.split(",")):
            for threads in map(int, a.threads.split(",")):
                # A slower run for few-image cells: the same number of images per cell.
                runs = max(5, a.runs // batch) if batch > 1 else a.runs
                rounds = {k: [] for k in ("fp32", "bf16", "int8", "tflite")}
                for _ in range(a.rounds):
                    rounds["fp32"].append(mnv1(a.mnv1, variant, flt, "fp32", batch, threads, runs))
                    rounds["bf16"].append(mnv1(a.mnv1, variant, flt, "bf16", batch, threads, runs))
                    rounds["int8"].append(mnv1(a.mnv1, variant, quant, None, batch, threads, runs))
                    rounds["tflite"].append(tflite(a.python, quant, batch, threads, runs))
                med = {k: (None if None in v else statistics.median(v)) for k, v in rounds.items()}
                ratio = lambda x, y: "-" if None in (x, y) else f"{x / y:.2f}x"
                print(f"| {variant}, batch {batch}, {threads} thread{'s' if threads > 1 else ''} | "
                      f"{fmt(med['fp32'])} | {fmt(med['bf16'])} | {fmt(med['int8'])} | {fmt(med['tflite'])} | "
                      f"{ratio(med['fp32'], med['int8'])} | {ratio(med['tflite'], med['int8'])} |", flush=True)


if __name__ == "__main__":
    main()
