#!/usr/bin/env python3
"""Print the spot values that src/weights/tflite.rs's tests check on the release .tflite.

The Rust reader maps a .tflite's convolutions onto the TF-Slim names by operator order and
transposes TFLite filter layouts into TensorFlow's:
    CONV_2D filter            [out, kh, kw, in]  ->  HWIO [kh, kw, in, out]
    DEPTHWISE_CONV_2D filter  [1, kh, kw, C]     ->  [kh, kw, C, 1]
This script reads the same file with TensorFlow Lite's own interpreter, finds the filters and
biases the same way (the n-th CONV_2D / DEPTHWISE_CONV_2D operator, inputs[1] and inputs[2];
tensor names are not used), takes a few elements in TFLite layout and prints them together
with the TF-layout index where the Rust reader must put them. The printed numbers are copied
into the test `release_file_spot_values` (shortest float32 reprs round-trip exactly,
so the test compares with ==).

How to run (any Python with TensorFlow 2.x; 2.21 was used):

    python tools/tflite_spot_values.py ../shared/testdata/weights/mobilenet_v1_0.25_128.tflite
"""
import sys

import numpy as np
import tensorflow as tf


def main(path):
    interp = tf.lite.Interpreter(model_path=path)
    convs = [op for op in interp._get_ops_details()
             if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 28, len(convs)
    # layer number in operator order -> canonical scope
    scopes = ["Conv2d_0"]
    for i in range(1, 14):
        scopes += [f"Conv2d_{i}_depthwise", f"Conv2d_{i}_pointwise"]
    scopes.append("Logits/Conv2d_1c_1x1")

    def filt(layer):
        return interp.get_tensor(convs[layer]["inputs"][1])

    def bias(layer):
        return interp.get_tensor(convs[layer]["inputs"][2])

    # (layer, TFLite index of the filter element)
    picks = [
        (0, (5, 1, 2, 0)),     # Conv2d_0 [out=8, 3, 3, in=3]
        (0, (7, 2, 0, 2)),
        (1, (0, 2, 1, 6)),     # Conv2d_1_depthwise [1, 3, 3, 8]
        (26, (200, 0, 0, 17)),  # Conv2d_13_pointwise [256, 1, 1, 256]
        (27, (505, 0, 0, 100)),  # logits [1001, 1, 1, 256]
    ]
    for layer, idx in picks:
        f = filt(layer)
        v = np.float32(f[idx])
        if convs[layer]["op_name"] == "CONV_2D":
            o, h, w, i = idx
            tf_idx = (h, w, i, o)
            name = "weights"
        else:
            _, h, w, c = idx
            tf_idx = (h, w, c, 0)
            name = "depthwise_weights"
        print(f"MobilenetV1/{scopes[layer]}/{name} tflite{list(f.shape)}{list(idx)} "
              f"-> tf{list(tf_idx)} = {np.format_float_positional(v)}")
    for layer, c in [(0, 3), (27, 505)]:
        print(f"MobilenetV1/{scopes[layer]}/biases[{c}] = {np.format_float_positional(np.float32(bias(layer)[c]))}")


if __name__ == "__main__":
    main(sys.argv[1])
