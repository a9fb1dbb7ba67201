#!/usr/bin/env python3
"""Runs `mnv1 bench` and the peers (TensorFlow Lite + XNNPACK, ONNX Runtime) back to back, variant
by variant, for several rounds, and prints the markdown table of bench/README.md (median of the
rounds' medians; ratio = mnv1 / TFLite, and the range of the rounds' own ratios).

needs: target/release/mnv1 (cargo build --release) and the peers' venv and script
(PEERS=path/to/peers.py, set up as its header says). Not run by CI.
run:   python3 tools/bench_table.py --variants all --batch 1 --threads 1 --rounds 3
"""
import argparse, json, os, statistics, subprocess, sys

ALL = [f"{m}_{r}" for m in ("025", "050", "075", "100") for r in (128, 160, 192, 224)]


def mnv1(variant, batch, threads, runs):
    out = subprocess.run(["target/release/mnv1", "bench", "--variant", variant, "--batch", str(batch),
                          "--threads", str(threads), "--runs", str(runs), "--json", "-q"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ms_median"]


def peers(variant, batch, threads, runs, python, script):
    out = subprocess.run([python, script, "--variants", variant, "--batch", str(batch), "--threads", str(threads),
                          "--runs", str(runs)], check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return {r["engine"]: r["ms_per_batch"] for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="100_224,025_128")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python", default="/tmp/peers/bin/python")
    ap.add_argument("--peers", default=os.environ.get("PEERS", "../shared/bench/peers.py"))
    a = ap.parse_args()
    variants = ALL if a.variants == "all" else a.variants.split(",")
    print(f"| variant | batch | threads | mnv1 ms | TFLite ms | ORT ms | mnv1/TFLite | rounds' ratio range |")
    print(f"|---|---|---|---|---|---|---|---|")
    for v in variants:
        ours, tfl, ort = [], [], []
        for _ in range(a.rounds):
            ours.append(mnv1(v, a.batch, a.threads, a.runs))
            p = peers(v, a.batch, a.threads, a.runs, a.python, a.peers)
            tfl.append(p["tflite-xnnpack"])
            ort.append(p["onnxruntime"])
        m, t, o = (statistics.median(x) for x in (ours, tfl, ort))
        # The engines run one after the other in each round, so a round's ratio is the fairest
        # single comparison on a machine whose speed drifts; their spread says how noisy it was.
        ratios = [x / y for x, y in zip(ours, tfl)]
        print(f"| {v} | {a.batch} | {a.threads} | {m:.3f} | {t:.3f} | {o:.3f} | {m / t:.2f} "
              f"| {min(ratios):.2f}-{max(ratios):.2f} |", flush=True)
        print(f"  rounds: mnv1 {ours} tflite {tfl} ort {ort}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
