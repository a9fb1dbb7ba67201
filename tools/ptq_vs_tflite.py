#!/usr/bin/env python3
"""mnv1's post-training int8 quantization against TFLiteConverter's, on the same float model and
the same calibration images.

The float .tflite's folded filters and biases are rebuilt as a Keras model (conv + bias + ReLU6
per layer, 4x4 average pool, 1x1 logits conv, reshape, softmax; input the [-1, 1] image), which
TFLiteConverter quantizes full-integer (int8 activations, per-channel int8 filters) on the
calibration photos, preprocessed with TF-Slim's eval (central crop 0.875, TF1 bilinear resize)
as `mnv1` does. mnv1's parameters come from `examples/ptq_params.rs` on the same photos. Prints,
per layer, both output scales and zero points and the largest relative filter-scale difference,
then the top-1 accuracy of TFLite's int8 model (reference kernels) and of the Keras fp32 model on
the held-out photos.

    cargo build --release --example ptq_params
    /tmp/tfenv/bin/python tools/ptq_vs_tflite.py ../shared/testdata/imagenet-sample-200 \\
        --weights ../shared/testdata/weights/mobilenet_v1_0.25_128.tflite [--calibrate-on first-half]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import tensorflow as tf


def float_layers(path):
    """(kind, filter, bias, stride) of every convolution of a float MobileNet V1 .tflite, in order."""
    it = tf.lite.Interpreter(model_path=path)
    it.allocate_tensors()
    out = []
    for op in it._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        f = it.get_tensor(op["inputs"][1])
        b = it.get_tensor(op["inputs"][2])
        out.append((op["op_name"], f, b))
    return out


def keras_model(layers, size):
    L = tf.keras.layers
    inp = tf.keras.Input((size, size, 3), batch_size=1)
    x = inp
    # Conv2d_0, then each depthwise layer's stride and its pointwise layer's 1.
    strides = [2] + [s for dw in [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1] for s in (dw, 1)]
    body, logits = layers[:-1], layers[-1]
    for (kind, f, b), stride in zip(body, strides):
        if kind == "CONV_2D":
            l = L.Conv2D(f.shape[0], f.shape[1], stride, "same")
            x = l(x)
            l.set_weights([f.transpose(1, 2, 3, 0), b])  # [out,kh,kw,in] -> HWIO
        else:
            l = L.DepthwiseConv2D(f.shape[1], stride, "same")
            x = l(x)
            l.set_weights([f.transpose(1, 2, 3, 0), b])  # [1,kh,kw,C] -> [kh,kw,C,1]
        x = L.ReLU(6.0)(x)
    x = L.AveragePooling2D(-(-size // 32))(x)
    l = L.Conv2D(logits[1].shape[0], 1, padding="same")
    x = l(x)
    l.set_weights([logits[1].transpose(1, 2, 3, 0), logits[2]])
    x = L.Reshape((logits[1].shape[0],))(x)
    return tf.keras.Model(inp, L.Softmax()(x))


def preprocess(path, size):
    img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    img = tf.image.convert_image_dtype(img, tf.float32)
    img = tf.image.central_crop(img, 0.875)
    img = tf.compat.v1.image.resize_bilinear(img[None], [size, size], align_corners=False).numpy()
    return img * 2 - 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("photos")
    ap.add_argument("--weights", default="../shared/testdata/weights/mobilenet_v1_0.25_128.tflite")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--params", default=os.environ.get("CARGO_TARGET_DIR", "target") + "/release/examples/ptq_params")
    ap.add_argument("--calibrate-on", choices=["all", "first-half"], default="first-half")
    args = ap.parse_args()
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(args.photos, "labels.tsv"))]
    rows = [(r[0], int(r[1])) for r in rows if r and r[0].lower().endswith((".jpeg", ".jpg"))]
    calib = rows if args.calibrate_on == "all" else rows[: len(rows) // 2]
    held = [r for r in rows if r not in calib] or rows

    m = keras_model(float_layers(args.weights), args.size)
    images = {n: preprocess(os.path.join(args.photos, n), args.size) for n, _ in rows}
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([images[n]] for n, _ in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    blob = conv.convert()

    with tempfile.TemporaryDirectory() as tmp:
        for n, _ in calib:
            os.symlink(os.path.abspath(os.path.join(args.photos, n)), os.path.join(tmp, n))
        ours = json.loads(subprocess.run([args.params, args.weights, tmp, str(args.size)], check=True,
                                         capture_output=True, text=True).stdout)

    it = tf.lite.Interpreter(model_content=blob,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    convs = [o for o in it._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    d = it.get_input_details()[0]
    print(f"input: TFLite {d['quantization']}, mnv1 {tuple(ours['input'])}")
    same_out = same_filters = 0
    for k, (op, mine) in enumerate(zip(convs, ours["layers"])):
        out = tensors[op["outputs"][0]]["quantization_parameters"]
        fs = tensors[op["inputs"][1]]["quantization_parameters"]["scales"]
        bias = it.get_tensor(op["inputs"][2])
        s, z = float(out["scales"][0]), int(out["zero_points"][0])
        fdiff = float(np.max(np.abs(np.array(mine["filter_scales"]) - fs) / fs))
        bdiff = int(np.max(np.abs(np.array(mine["bias"], np.int64) - bias)))
        same_out += (np.float32(s) == np.float32(mine["output"][0])) and z == mine["output"][1]
        same_filters += fdiff == 0 and bdiff == 0
        print(f"layer {k:2d}: output TFLite ({s:.8g}, {z}) mnv1 ({mine['output'][0]:.8g}, {mine['output'][1]}), "
              f"scale ratio {mine['output'][0] / s:.6f}; filter scales max rel diff {fdiff:.2e}, "
              f"bias max diff {bdiff}")
    print(f"{same_out}/{len(convs)} output params and {same_filters}/{len(convs)} filters+biases identical")

    scale, zp = d["quantization"]
    out_d = it.get_output_details()[0]
    right8 = right32 = agree = 0
    for n, label in held:
        x = images[n]
        it.set_tensor(d["index"], np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8))
        it.invoke()
        t8 = int(it.get_tensor(out_d["index"])[0].argmax())
        t32 = int(m(x).numpy()[0].argmax())
        right8 += t8 == label
        right32 += t32 == label
        agree += t8 == t32
    n = len(held)
    print(f"TFLite on {n} held-out photos: int8 top-1 {right8}/{n}, fp32 (Keras) top-1 {right32}/{n}, "
          f"agreement {agree}/{n}")


if __name__ == "__main__":
    main()
