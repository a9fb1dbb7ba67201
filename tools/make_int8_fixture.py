#!/usr/bin/env python3
"""A full-integer int8 MobileNet V1 0.25 @ 128 written by TFLiteConverter, and TFLite's outputs for it.

Writes tests/fixtures/int8_025_128.tflite and tests/fixtures/int8_golden_025_128.npz (same keys as
tools/make_quant_golden.py: inputs (int8 input tensor values, stored as int8), pooled, logits, probs,
layer_sums; all outputs int8, layer_sums over the int8 values). With --uint8-io: the uint8 input
values, probs the uint8 output (pooled, logits and layer_sums the int8 tensors inside).

The network is MobileNet V1's layer table (SAME padding everywhere, BatchNorm, ReLU6, 4x4
AVERAGE_POOL_2D, 1x1 logits conv, reshape, softmax) in Keras with seeded random weights and batch
statistics (not trained); TFLiteConverter's post-training full-integer quantization (int8
activations, per-channel symmetric int8 filters, int8 input and output), calibrated on 16 seeded
smooth random images. Goldens from tf.lite.Interpreter's BUILTIN_REF resolver.

    /tmp/tfenv/bin/python tools/make_int8_fixture.py    (about 30 s)
    /tmp/tfenv/bin/python tools/make_int8_fixture.py --uint8-io
        (the same network with uint8 input and output, inference_input_type=inference_output_type=
        tf.uint8: tests/fixtures/uint8io_025_128.tflite and uint8io_golden_025_128.npz, inputs
        and outputs uint8)
    /tmp/tfenv/bin/python tools/make_int8_fixture.py --multiplier 1.0 --size 224 \
        --model-only /tmp/int8_100_224.tflite          (a 1.0_224 int8 model to time, not committed)
"""
import argparse
import io
import os
import zipfile

import numpy as np
import tensorflow as tf

BODY = [(1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128)] + [(1, 128)] * 5 + [(2, 256), (1, 256)]


def model(rng, alpha, size):
    L = tf.keras.layers
    inp = tf.keras.Input((size, size, 3), batch_size=1)
    width = lambda c: int(c * alpha * 4)

    def bn_relu(x):
        x = L.BatchNormalization(epsilon=1e-3)(x)
        return L.ReLU(6.0)(x)

    x = bn_relu(L.Conv2D(width(8), 3, 2, "same", use_bias=False)(inp))
    for stride, out in BODY:
        x = bn_relu(L.DepthwiseConv2D(3, stride, "same", use_bias=False)(x))
        x = bn_relu(L.Conv2D(width(out), 1, 1, "same", use_bias=False)(x))
    x = L.AveragePooling2D(-(-size // 32))(x)
    x = L.Conv2D(1001, 1, padding="same")(x)
    x = L.Reshape((1001,))(x)
    m = tf.keras.Model(inp, L.Softmax()(x))
    for layer in m.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if isinstance(layer, L.BatchNormalization):
            c = ws[0].shape[0]
            ws = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                  rng.uniform(0.5, 1.5, c)]
        else:
            fan_in = np.prod(ws[0].shape[:-1]) if not isinstance(layer, L.DepthwiseConv2D) else 9
            ws = [rng.normal(0, np.sqrt(2.0 / fan_in), w.shape) if w.ndim > 1 else rng.normal(0, 0.1, w.shape)
                  for w in ws]
        layer.set_weights([w.astype(np.float32) for w in ws])
    return m


def smooth(rng, size=128):
    small = rng.uniform(0, 1, size=(1, 8, 8, 3)).astype(np.float32)
    big = tf.compat.v1.image.resize_bilinear(small, [size, size], align_corners=False).numpy()
    return np.clip(big + rng.normal(0, 0.05, big.shape), 0, 1).astype(np.float32) * 2 - 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--multiplier", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--model-only", metavar="PATH",
                    help="write only the .tflite, to PATH (e.g. a 1.0_224 model to time, outside the repository)")
    ap.add_argument("--uint8-io", action="store_true",
                    help="uint8 input and output (a QUANTIZE at each end), as Model Maker exports")
    args = ap.parse_args()
    io_type = tf.uint8 if args.uint8_io else tf.int8
    stem = "uint8io" if args.uint8_io else "int8"
    rng = np.random.default_rng(20261207)
    m = model(rng, args.multiplier, args.size)
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    calib = [smooth(rng, args.size) for _ in range(16)]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = io_type
    conv.inference_output_type = io_type
    blob = conv.convert()
    if args.model_only:
        with open(args.model_only, "wb") as f:
            f.write(blob)
        print(f"wrote {args.model_only} ({len(blob)} bytes)")
        return
    os.makedirs("tests/fixtures", exist_ok=True)
    path = f"tests/fixtures/{stem}_025_128.tflite"
    with open(path, "wb") as f:
        f.write(blob)

    it = tf.lite.Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ops = it._get_ops_details()
    names = [o["op_name"] for o in ops]
    print(names)
    d = it.get_input_details()[0]
    scale, zp = d["quantization"]
    inputs = []
    for _ in range(4):
        x = smooth(rng)
        lo, hi = (0, 255) if args.uint8_io else (-128, 127)
        inputs.append(np.clip(np.round(x / scale) + zp, lo, hi).astype(d["dtype"])[0])
    inputs = np.stack(inputs)
    body = names.index("AVERAGE_POOL_2D")
    arrays = {"inputs": inputs}
    outs = []
    for x in inputs:
        it.set_tensor(d["index"], x[None])
        it.invoke()
        outs.append([it.get_tensor(o["outputs"][0]).copy() for o in ops])
    arrays["pooled"] = np.stack([o[body].reshape(-1) for o in outs])
    arrays["logits"] = np.stack([o[body + 1].reshape(-1) for o in outs])
    arrays["probs"] = np.stack([o[-1].reshape(-1) for o in outs])
    first = 1 if args.uint8_io else 0  # the input QUANTIZE is not a body layer
    sums = np.zeros((len(inputs), body - first, 2), np.int64)
    for i, o in enumerate(outs):
        for k in range(first, body):
            v = o[k].reshape(-1).astype(np.int64)
            sums[i, k - first] = [v.sum(), (v * (np.arange(v.size) % 65521)).sum()]
    arrays["layer_sums"] = sums
    print("top-1:", arrays["probs"].argmax(1).tolist())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]))
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, member.getvalue())
    with open(f"tests/fixtures/{stem}_golden_025_128.npz", "wb") as f:
        f.write(buf.getvalue())
    print(len(blob), len(buf.getvalue()))


if __name__ == "__main__":
    main()
