#!/usr/bin/env python3
"""TensorFlow Lite's own outputs for Google's quantized MobileNet V1 (uint8), for mnv1's int8 path.

Writes tests/fixtures/quant_golden_025_128.npz (np.savez_compressed), all uint8:
  inputs          [N, 128, 128, 3]  the model's input tensor (scale 1/128, zero point 128)
  logits          [N, 1001]         MobilenetV1/Logits/SpatialSqueeze1 (pre-softmax, quantized)
  probs           [N, 1001]         MobilenetV1/Predictions/Reshape_1 (the model's output)
  pooled          [N, 256]          MobilenetV1/Logits/AvgPool_1a (the feature vector)
  layer_sums      [N, 27, 2] int64  per input, for each body layer (operators 0..26) the sum of its
                                    uint8 output and the sum of value * (flat index % 65521): a
                                    mismatch is reported at the first layer that differs
N = 6 inputs: the two photos of examples/data (TF-Slim eval preprocessing: decode, central crop
0.875, TF1 resize_bilinear, pixels rounded to uint8 and fed as the uint8 input, as an image
classifier with a uint8 input is fed), one of them mirrored, and three seeded smooth random
images (bilinear upsampling of 8x8 noise, so the activations look like a photo's, not white noise).

Every output comes from tf.lite.Interpreter with the BUILTIN_REF op resolver (TFLite's reference
kernels). The script also runs TFLite's optimized builtin kernels without delegates
(BUILTIN_WITHOUT_DEFAULT_DELEGATES; with TF 2.21 they equal the reference everywhere except 7 of
6006 logits, by 1, in operator 28, the logits CONV_2D) and
the default path (AUTO: the XNNPACK delegate, which requantizes in fp32 and is not bit-exact), and
prints how many elements the XNNPACK path differs on: the bar for "bit for bit" is TFLite's
integer kernels, and the print says how far TFLite's own XNNPACK path is from them.

Run from the repository root (about 10 s):
    /tmp/tfenv/bin/python tools/make_quant_golden.py [--model ../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite]
                                                    [--out tests/fixtures/quant_golden_025_128.npz]
"""
import argparse
import io
import os
import zipfile

import numpy as np
import tensorflow as tf

BODY_OPS = 27


def photo(path, size, mirror=False):
    img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    img = tf.image.convert_image_dtype(img, tf.float32)
    img = tf.image.central_crop(img, 0.875)
    img = tf.compat.v1.image.resize_bilinear(img[None], [size, size], align_corners=False)[0]
    u8 = np.clip(np.round(img.numpy() * 255.0), 0, 255).astype(np.uint8)
    return u8[:, ::-1] if mirror else u8


def smooth_noise(rng, size):
    small = rng.uniform(0, 255, size=(1, 8, 8, 3)).astype(np.float32)
    big = tf.compat.v1.image.resize_bilinear(small, [size, size], align_corners=False)[0].numpy()
    big += rng.normal(0, 12, size=big.shape)
    return np.clip(np.round(big), 0, 255).astype(np.uint8)


def run_all(model, inputs, resolver):
    it = tf.lite.Interpreter(model_path=model, experimental_op_resolver_type=resolver,
                             experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    ops = it._get_ops_details()
    inp = it.get_input_details()[0]["index"]
    outs = []
    for x in inputs:
        it.set_tensor(inp, x[None])
        it.invoke()
        per_op = [it.get_tensor(op["outputs"][0]).copy() for op in ops]
        outs.append(per_op)
    return ops, outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite")
    ap.add_argument("--out", default="tests/fixtures/quant_golden_025_128.npz")
    args = ap.parse_args()
    size = 128
    rng = np.random.default_rng(20261207)
    inputs = [photo("examples/data/chelsea.jpg", size), photo("examples/data/coffee.jpg", size),
              photo("examples/data/coffee.jpg", size, mirror=True)]
    inputs += [smooth_noise(rng, size) for _ in range(3)]
    inputs = np.stack(inputs)

    R = tf.lite.experimental.OpResolverType
    ops, ref = run_all(args.model, inputs, R.BUILTIN_REF)
    _, builtin = run_all(args.model, inputs, R.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    _, opt = run_all(args.model, inputs, R.AUTO)
    names = [op["op_name"] for op in ops]
    for k in range(len(names)):
        a = np.stack([o[k] for o in ref]).astype(int)
        b = np.stack([o[k] for o in builtin]).astype(int)
        d = np.abs(a - b)
        if d.max() > 0:
            print(f"operator {k} ({names[k]}): optimized builtin kernels differ from the reference "
                  f"on {int((d > 0).sum())} of {d.size} elements, max {int(d.max())}")
    names = [op["op_name"] for op in ops]
    assert names[:BODY_OPS] == ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 13, names
    assert names[BODY_OPS:] == ["AVERAGE_POOL_2D", "CONV_2D", "RESHAPE", "SOFTMAX"], names

    arrays = {"inputs": inputs}
    for key, k in [("pooled", BODY_OPS), ("logits", BODY_OPS + 2), ("probs", BODY_OPS + 3)]:
        arrays[key] = np.stack([o[k].reshape(-1) for o in ref]).astype(np.uint8)
        other = np.stack([o[k].reshape(-1) for o in opt])
        diff = np.abs(arrays[key].astype(int) - other.astype(int))
        print(f"{key}: reference vs default (XNNPACK) path: {int((diff > 0).sum())} of {diff.size} "
              f"elements differ, max {int(diff.max())}")
    sums = np.zeros((len(inputs), BODY_OPS, 2), np.int64)
    for i, per_op in enumerate(ref):
        for k in range(BODY_OPS):
            v = per_op[k].reshape(-1).astype(np.int64)
            sums[i, k] = [v.sum(), (v * (np.arange(v.size) % 65521)).sum()]
    arrays["layer_sums"] = sums
    top1 = arrays["probs"].argmax(1)
    print("top-1 per input:", top1.tolist())
    assert len(set(top1.tolist())) >= 4, "inputs should give different classes"

    # np.savez_compressed with fixed timestamps, so reruns are byte-identical.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]))
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, member.getvalue())
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(buf.getvalue())
    print(f"wrote {args.out} ({len(buf.getvalue())} bytes)")


if __name__ == "__main__":
    main()
