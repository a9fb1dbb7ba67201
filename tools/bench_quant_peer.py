#!/usr/bin/env python3
"""TensorFlow Lite timing a given .tflite (e.g. Google's quantized MobileNet V1), the peer that
`mnv1 bench --weights THE_SAME_FILE` is compared with in one session (bench/README.md).

Prints one JSON object per (engine, batch, threads): median ms per batch and images/s.
Engines: `xnnpack` (the default resolver: TFLite's XNNPACK delegate, which also runs uint8 and
int8 models) and `builtin` (TFLite's own optimized kernels, no delegate). A model whose graph is
fixed to batch 1 (Google's *_quant files reshape to [1, 1001]) is timed at batch B as B
invocations of batch 1, which is what a caller of such a model does; the line says so.

    /tmp/tfenv/bin/python tools/bench_quant_peer.py ../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite \
        --batch 1,32 --threads 1,2 [--runs 30]
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf


def median_ms(fn, runs):
    fn()
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    R = tf.lite.experimental.OpResolverType
    for engine, resolver in [("xnnpack", R.AUTO), ("builtin", R.BUILTIN_WITHOUT_DEFAULT_DELEGATES)]:
        for threads in map(int, a.threads.split(",")):
            for batch in map(int, a.batch.split(",")):
                it = tf.lite.Interpreter(model_path=a.model, num_threads=threads,
                                         experimental_op_resolver_type=resolver)
                d = it.get_input_details()[0]
                shape = list(d["shape"])
                looped = False
                try:
                    it.resize_tensor_input(d["index"], [batch] + shape[1:])
                    it.allocate_tensors()
                    x = np.random.randint(0, 256, size=[batch] + shape[1:]).astype(d["dtype"])
                    it.set_tensor(d["index"], x)
                    it.invoke()
                    calls = 1
                except Exception:
                    it = tf.lite.Interpreter(model_path=a.model, num_threads=threads,
                                             experimental_op_resolver_type=resolver)
                    it.allocate_tensors()
                    x = np.random.randint(0, 256, size=shape).astype(d["dtype"])
                    looped, calls = True, batch

                def run():
                    for _ in range(calls):
                        it.set_tensor(d["index"], x)
                        it.invoke()

                ms = median_ms(run, a.runs)
                print(json.dumps({"engine": f"tflite-{engine}", "model": os.path.basename(a.model),
                                  "batch": batch, "threads": threads, "median_ms": round(ms, 3),
                                  "images_per_s": round(batch * 1e3 / ms, 1),
                                  **({"as": f"{batch} x batch 1"} if looped else {})}), flush=True)


if __name__ == "__main__":
    main()
