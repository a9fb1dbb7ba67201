#!/usr/bin/env python3
"""Produces the tiny TensorFlow checkpoint used by src/weights/checkpoint.rs's unit tests.

Writes two checkpoints (a few KB in all) into tests/fixtures/checkpoint/:
tiny.ckpt.{index,data-00000-of-00001} and partitioned.ckpt.{index,data-00000-of-00001}, with TensorFlow's own SaveV2 op, i.e. the same tensor-bundle
writer that produced the released MobileNet checkpoints. Every value is a simple
formula of its position and exactly representable in float32, so the Rust tests can
restate it. Needs TensorFlow (tested with tensorflow-cpu 2.21):

    python tools/make_checkpoint_fixture.py [OUT_DIR]   # default tests/fixtures/checkpoint

tiny.ckpt (name: dtype shape = values, i = row-major element index):
  MobilenetV1/Conv2d_0/weights                float32 [3,3,3,2] = (i - 20) * 0.125
  MobilenetV1/Conv2d_{k}_depthwise/BatchNorm/{beta,gamma}, k = 1..13
                                              float32 [2]       = k + 0.5 * i (beta: negated)
  MobilenetV1/Logits/Conv2d_1c_1x1/biases     float32 [5]       = 0.25 * i
  scalar                                      float32 []        = 2.5
  empty                                       float32 [0,3]     (no data)
  global_step                                 int64   []        = 123456
  ints                                        int32   [3]       = 7, 8, 9
  doubles                                     float64 [2]       = 0.5, 1.5
  label                                       string  []        = "mobilenet"
partitioned.ckpt:
  partitioned                                 float32 [4]       saved as two slices [0:2] and [2:4]
                                                                = 1, 2, 3, 4
  plain                                       float32 [2]       = -1, 1
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "checkpoint")
    os.makedirs(out_dir, exist_ok=True)
    names, slices, tensors = [], [], []

    def add(name, value, slice_spec=""):
        names.append(name)
        slices.append(slice_spec)
        tensors.append(tf.constant(value))

    add("MobilenetV1/Conv2d_0/weights",
        ((np.arange(54, dtype=np.float32) - 20) * 0.125).reshape(3, 3, 3, 2))
    for k in range(1, 14):
        base = f"MobilenetV1/Conv2d_{k}_depthwise/BatchNorm/"
        add(base + "gamma", np.array([k, k + 0.5], dtype=np.float32))
        add(base + "beta", -np.array([k, k + 0.5], dtype=np.float32))
    add("MobilenetV1/Logits/Conv2d_1c_1x1/biases", np.arange(5, dtype=np.float32) * 0.25)
    add("scalar", np.float32(2.5))
    add("empty", np.zeros((0, 3), dtype=np.float32))
    add("global_step", np.int64(123456))
    add("ints", np.array([7, 8, 9], dtype=np.int32))
    add("doubles", np.array([0.5, 1.5], dtype=np.float64))
    add("label", np.array(b"mobilenet"))
    save(os.path.join(out_dir, "tiny.ckpt"), names, slices, tensors)

    names, slices, tensors = [], [], []
    add("partitioned", np.array([1, 2], dtype=np.float32), "4 0,2")
    add("partitioned", np.array([3, 4], dtype=np.float32), "4 2,2")
    add("plain", np.array([-1, 1], dtype=np.float32))
    save(os.path.join(out_dir, "partitioned.ckpt"), names, slices, tensors)


def save(prefix, names, slices, tensors):
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=slices, tensors=tensors)
    # Sanity check with TensorFlow's own reader: every tensor reads back unchanged.
    reader = tf.train.load_checkpoint(prefix)
    for name, spec, tensor in zip(names, slices, tensors):
        if not spec:
            assert np.array_equal(reader.get_tensor(name), tensor.numpy()), name
    for suffix in (".index", ".data-00000-of-00001"):
        print(prefix + suffix, os.path.getsize(prefix + suffix), "bytes")


if __name__ == "__main__":
    main()
