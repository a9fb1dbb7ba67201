#!/usr/bin/env python3
"""Where int8 and bf16 lose top-1 agreement with fp32 on MobileNet V1 0.25_128: the error budget
behind bench/README.md "Why the accuracy targets are out of reach".

A TensorFlow emulation (fake quantization, float arithmetic) of the float .tflite, read from the
file's own tensors (BatchNorm already folded, ReLU6 after every layer). Each layer's filters and
input can be kept fp32, rounded to bf16 (round to nearest even), split into a bf16 hi + lo pair,
or fake-quantized as mnv1's post-training int8 quantizes (TFLiteConverter's scheme: input
2/255 with zero point -1, every ReLU6 output 6/255 with -128, filters symmetric per output
channel max|w|/127, biases int32 at input x filter scale, the logits at their calibrated range;
bias correction as src/quantize/bias_correction.rs). Calibration on the first --calibrate
photos of labels.tsv, as tools/ptq_top1.py's first-half split.

For each configuration it prints the top-1 agreement with the fp32 emulation (all photos and the
held-out ones), the top-1 accuracy, and the RMS logit error against fp32; then what i.i.d.
Gaussian noise of each size on the logits would cost, from the fp32 top-1 / top-2 margins.
The fp32 emulation is checked against mnv1's own fp32 top-1 when --mnv1-top1 is given (jsonl
of `mnv1 classify --top-k 1 --format jsonl`).

needs: /tmp/tfenv (tools/README.md), ../shared/testdata. Not run by CI. About 10 s.
run:   /tmp/tfenv/bin/python tools/precision_error_budget.py \\
           --model ../shared/testdata/weights/mobilenet_v1_0.25_128.tflite \\
           --photos ../shared/testdata/imagenet-sample-200 [--mnv1-top1 fp32.jsonl]
"""
import argparse
import json
import math
import os

import numpy as np
import tensorflow as tf

from ptq_vs_tflite import float_layers, preprocess

RELU6 = (6.0 / 255.0, -128.0)
INPUT = (2.0 / 255.0, -1.0)


def load_images(photos, size):
    """The labelled photos, preprocessed as mnv1 does (ptq_vs_tflite.py's TF-Slim eval)."""
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(photos, "labels.tsv"))]
    rows = [r for r in rows if r and r[0].lower().endswith((".jpeg", ".jpg"))]
    images = np.concatenate([preprocess(os.path.join(photos, r[0]), size) for r in rows])
    return images, [r[0] for r in rows], np.array([int(r[1]) for r in rows])


def load_layers(model):
    """The 27 body layers and the logits, in order: kind, filter (HWIO; depthwise [3,3,C,1]),
    bias, stride."""
    layers = []
    for op, w, b in float_layers(model):
        if op == "DEPTHWISE_CONV_2D":
            layers.append(dict(kind="dw", w=w[0][:, :, :, None], b=b))
        else:
            layers.append(dict(kind="conv" if w.shape[1] == 3 else "pw",
                               w=np.transpose(w, (1, 2, 3, 0)), b=b))
    assert len(layers) == 28, len(layers)
    strides = [2] + sum([[s, 1] for s in [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]], []) + [1]
    for layer, s in zip(layers, strides):
        layer["stride"] = s
    layers[-1]["kind"] = "logits"
    return layers


def bf16(x):
    return tf.cast(tf.cast(x, tf.bfloat16), tf.float32)


def rounded(x, mode, qparams=None):
    """x as `mode` keeps it: fp32, bf16, bf16x2 (hi + lo), int8 (fake-quantized at qparams)."""
    if mode == "fp32":
        return x
    if mode == "bf16":
        return bf16(x)
    if mode == "bf16x2":
        hi = bf16(x)
        return hi + bf16(x - hi)
    scale, zp = qparams
    return (tf.clip_by_value(tf.round(x / scale) + zp, -128.0, 127.0) - zp) * scale


def filter_scales(layer):
    axes = (0, 1, 3) if layer["kind"] == "dw" else (0, 1, 2)
    return np.maximum(np.max(np.abs(layer["w"]), axis=axes), 1e-12) / 127.0


def per_channel(layer, v):
    return v.reshape(1, 1, -1, 1) if layer["kind"] == "dw" else v.reshape(1, 1, 1, -1)


class Emulation:
    """One configuration: `w[i]`, `a[i]` the modes of layer i's filter and input, `logits`
    fp32 or int8; int8 biases corrected layer by layer when `correct`."""

    def __init__(self, layers, w, a, logits="fp32", logit_range=None):
        self.layers, self.w, self.a, self.logits = layers, w, a, logits
        self.inputs = [INPUT] + [RELU6] * 27
        self.bias = [l["b"].astype(np.float32) for l in layers]
        self.logit_q = None
        if logit_range is not None:
            lo, hi = min(logit_range[0], 0.0), max(logit_range[1], 0.0)
            scale = (hi - lo) / 255.0
            self.logit_q = (scale, float(np.round(-128 - lo / scale)))

    def filter(self, i):
        layer, mode = self.layers[i], self.w[i]
        if mode != "int8":
            return rounded(layer["w"], mode)
        s = per_channel(layer, filter_scales(layer))
        return (np.clip(np.round(layer["w"] / s), -127, 127) * s).astype(np.float32)

    def bias_of(self, i):
        if self.w[i] == "int8" and self.a[i] == "int8":
            step = self.inputs[i][0] * filter_scales(self.layers[i])
            return (np.round(self.bias[i] / step) * step).astype(np.float32)
        return self.bias[i]

    def pre(self, i, x):
        layer = self.layers[i]
        s = layer["stride"]
        if layer["kind"] == "dw":
            y = tf.nn.depthwise_conv2d(x, self.filter(i), [1, s, s, 1], "SAME")
        else:
            y = tf.nn.conv2d(x, self.filter(i), s, "SAME")
        return y + self.bias_of(i)

    def pool(self, x):
        if self.a[27] != "int8":
            return rounded(tf.reduce_mean(x, axis=[1, 2], keepdims=True), self.a[27])
        # TFLite's integer AVERAGE_POOL_2D: the sum rounded half away from zero.
        scale, zp = self.inputs[27]
        q = tf.reduce_sum(tf.round(x / scale) + zp, axis=[1, 2], keepdims=True)
        n = float(x.shape[1] * x.shape[2])
        r = tf.sign(q) * tf.floor((tf.abs(q) + n // 2) / n)
        return (r - zp) * scale

    def layer_inputs(self, x):
        """Each layer's input (as this configuration rounds it), one after another."""
        h = tf.constant(x)
        for i in range(27):
            xi = rounded(h, self.a[i], self.inputs[i])
            yield i, xi
            h = tf.clip_by_value(self.pre(i, xi), 0.0, 6.0)
        yield 27, self.pool(rounded(h, self.a[27], self.inputs[27]))

    def run(self, x, batch=50):
        out = []
        for k in range(0, len(x), batch):
            for i, xi in self.layer_inputs(x[k:k + batch]):
                pass
            lg = self.pre(27, xi)[:, 0, 0, :]
            if self.logits == "int8":
                lg = rounded(lg, "int8", self.logit_q)
            out.append(lg.numpy())
        return np.concatenate(out)

    def correct_biases(self, calib, fp32):
        """Bias correction (bias_correction.rs): layer by layer, each channel's mean (fp32 -
        quantized) pre-activation where fp32's is inside ReLU6's (0, 6), into the bias."""
        reference = dict(fp32.layer_inputs(calib))
        for i, xi in self.layer_inputs(calib):
            yq = self.pre(i, xi).numpy().reshape(-1, self.layers[i]["b"].size)
            yf = fp32.pre(i, reference[i]).numpy().reshape(yq.shape)
            inside = (yf > 0) & (yf < 6) if i < 27 else np.ones_like(yf, bool)
            shift = ((yf - yq) * inside).sum(0) / np.maximum(inside.sum(0), 1)
            self.bias[i] = (self.bias[i] + shift).astype(np.float32)


def expected_flips(margins, sigma):
    """Photos whose top-1 and top-2 swap under i.i.d. N(0, sigma^2) noise on every logit (the
    two nearest only): P(difference of two noises > margin) summed."""
    return sum(0.5 * math.erfc(m / (2 * sigma)) for m in margins)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--calibrate", type=int, default=100, help="the first N photos calibrate")
    ap.add_argument("--mnv1-top1", help="mnv1 classify --top-k 1 --format jsonl output (fp32)")
    args = ap.parse_args()
    layers = load_layers(args.model)
    x, names, labels = load_images(args.photos, 128)
    calib, n = x[:args.calibrate], len(x)
    all28 = lambda mode: [mode] * 28
    fp32 = Emulation(layers, all28("fp32"), all28("fp32"))
    lg32 = fp32.run(x)
    top32 = lg32.argmax(1)
    if args.mnv1_top1:
        mine = {os.path.basename(json.loads(l)["path"]): json.loads(l)["predictions"][0]["index"]
                for l in open(args.mnv1_top1)}
        same = sum(mine[name] == t for name, t in zip(names, top32))
        print(f"fp32 emulation against mnv1 fp32: top-1 equal on {same}/{n}")
    calib_logits = fp32.run(calib)
    logit_range = (float(calib_logits.min()), float(calib_logits.max()))

    def report(name, emu):
        lg = emu.run(x)
        top = lg.argmax(1)
        agree = top == top32
        rms = float(np.sqrt(np.mean((lg - lg32) ** 2)))
        print(f"{name:58s} agreement {agree.sum():3d}/{n} held out {agree[args.calibrate:].sum():3d}"
              f"/{n - args.calibrate}  top-1 {(top == labels).sum():3d}/{n}  logit RMS error {rms:.3f}")

    print(f"fp32: top-1 {(top32 == labels).sum()}/{n}")
    int8 = lambda w, a, logits: Emulation(layers, all28(w), all28(a), logits, logit_range)
    report("int8 logits only (fp32 body)", int8("fp32", "fp32", "int8"))
    report("int8 filters only", int8("int8", "fp32", "fp32"))
    report("int8 activations only (fp32 filters)", int8("fp32", "int8", "fp32"))
    emu = int8("fp32", "int8", "fp32")
    emu.correct_biases(calib, fp32)
    report("  + bias correction", emu)
    report("int8 filters and activations, int8 logits", int8("int8", "int8", "int8"))
    for logits in ("int8", "fp32"):
        emu = int8("int8", "int8", logits)
        emu.correct_biases(calib, fp32)
        report(f"  + bias correction, {logits} logits (mnv1's --precision int8)"
               if logits == "int8" else f"  + bias correction, {logits} logits", emu)
    # mnv1's bf16: the pointwise layers and the logits; Conv2d_0 and the depthwise layers fp32.
    body = lambda mode: [mode if l["kind"] in ("pw", "logits") else "fp32" for l in layers]
    report("bf16 pointwise and logits (mnv1's --precision bf16)", Emulation(layers, body("bf16"), body("bf16")))
    report("bf16 every layer", Emulation(layers, all28("bf16"), all28("bf16")))
    report("bf16: filters hi + lo, activations bf16", Emulation(layers, body("bf16x2"), body("bf16")))
    report("bf16: filters bf16, activations hi + lo", Emulation(layers, body("bf16"), body("bf16x2")))
    report("bf16: both hi + lo (three products per pair)", Emulation(layers, body("bf16x2"), body("bf16x2")))
    top2 = np.sort(lg32, axis=1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    for sigma in (0.02, 0.035, 0.05, 0.1, 0.2):
        print(f"i.i.d. logit noise sigma {sigma}: {expected_flips(margins, sigma):.1f} expected flips of {n}")


if __name__ == "__main__":
    main()
