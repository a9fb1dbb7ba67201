#!/usr/bin/env python3
"""TensorFlow Lite's top-1 on a folder of labelled photos with a quantized MobileNet V1, per photo.

Prints one TSV line per photo to stdout: file, TFLite's top-1 index (reference kernels), and the
label index from labels.tsv; the totals to stderr. Preprocessing is TF-Slim's eval: decode,
central crop 0.875, TF1 resize_bilinear (align_corners=False), pixels rounded to uint8
(round(x * 255)) and fed to the uint8 input as they are, the way an image classifier with a uint8
input is fed (`--input-quantize` instead quantizes the [-1, 1] image with the input's own scale
and zero point).

    /tmp/tfenv/bin/python tools/quant_top1.py ../shared/testdata/imagenet-sample-200 \
        [--model ../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite] > /tmp/tflite_top1.tsv
"""
import argparse
import os
import sys

import numpy as np
import tensorflow as tf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("photos")
    ap.add_argument("--model", default="../shared/testdata/weights/mobilenet_v1_0.25_128_quant.tflite")
    ap.add_argument("--input-quantize", action="store_true")
    args = ap.parse_args()
    it = tf.lite.Interpreter(model_path=args.model,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    size = int(inp["shape"][1])
    scale, zp = inp["quantization"]
    right = 0
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(args.photos, "labels.tsv"))]
    rows = [r for r in rows if r and r[0].lower().endswith((".jpeg", ".jpg"))]
    for name, label, *_ in rows:
        img = tf.io.decode_jpeg(tf.io.read_file(os.path.join(args.photos, name)), channels=3)
        img = tf.image.convert_image_dtype(img, tf.float32)
        img = tf.image.central_crop(img, 0.875)
        img = tf.compat.v1.image.resize_bilinear(img[None], [size, size], align_corners=False)[0].numpy()
        if args.input_quantize:
            q = np.clip(np.round((img * 2 - 1) / scale) + zp, 0, 255)
        else:
            q = np.clip(np.round(img * 255.0), 0, 255)
        it.set_tensor(inp["index"], q.astype(np.uint8)[None])
        it.invoke()
        top1 = int(it.get_tensor(out["index"])[0].argmax())
        right += top1 == int(label)
        print(f"{name}\t{top1}\t{label}")
    print(f"top-1: {right}/{len(rows)}", file=sys.stderr)


if __name__ == "__main__":
    main()
