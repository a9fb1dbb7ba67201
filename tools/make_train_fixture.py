#!/usr/bin/env python3
"""TensorFlow reference for mnv1's training engine: a few SGD-with-momentum steps of the whole MobileNet V1
backbone with BatchNorm in train mode and a new K-way head, recorded step by step.

Output: tests/fixtures/train_steps_025.npz (np.savez_compressed layout with fixed zip timestamps), all float32
unless said:
  images           [8, 67, 75, 3]  the batch, values in [0, 1] (multiples of 2^-8); the graph maps them x*2-1
  labels           [8] int32       classes 0..3
  head_weights_init [256, 4], head_biases_init [4]   the new head before the first step (seeded, few-bit)
  losses           [STEPS]         mean softmax cross-entropy of each step's forward pass (before its update)
  after/<name>     every variable after the last step, under its TF-Slim name (MobilenetV1/Conv2d_0/weights,
                   .../BatchNorm/{gamma,beta,moving_mean,moving_variance}, ...), and the head as
                   MobilenetV1/Logits/Conv2d_1c_1x1/weights [1, 1, 256, 4] and .../biases [4]
  settings         [4] float64     learning rate, momentum, BatchNorm momentum (TF decay), steps

The learning rate is small (0.0005) on purpose: this random-weight network's gradients grow towards the input (as
batch-normalised networks' do at initialisation), and from 0.001 up three steps are chaotic enough that TensorFlow
with 1 and with 2 threads already differs by 2e-4 in the first layer's variables after three steps; at 0.0005 it
differs by 7e-6 and the loss falls smoothly (1.438, 1.187, 1.020).

Start: the 0.25 checkpoint of tests/fixtures/mobilenet_v1_0.25_128.tgz (made by tools/make_fixtures.py). The odd
67 x 75 input puts TF's asymmetric SAME padding and odd spatial sizes (34x38, 17x19, 9x10, 5x5, 3x3) in every
stride-2 layer.

The graph is TF-Slim's mobilenet_v1 with is_training=True, written with tf.compat.v1 ops (tf-slim does not import
under TF 2.21; see tools/README.md): Conv2D / DepthwiseConv2dNative (SAME, no bias) -> FusedBatchNormV3
(is_training=True, epsilon 0.001, center and scale) -> Relu6; the moving averages updated as slim's batch_norm
does (moving_averages.assign_moving_average, zero_debias=False: moving -= (1 - decay) * (moving - batch), with the
batch variance FusedBatchNormV3 reports in training, which is Bessel-corrected; the script checks that); reduce_mean
over H, W; the head a dense layer (what Conv2d_1c_1x1 on a 1x1 map computes) without dropout;
tf.compat.v1.losses.sparse_softmax_cross_entropy (mean); tf.compat.v1.train.MomentumOptimizer
(accum = momentum * accum + grad; var -= lr * accum), run after the moving-average updates (control dependency).

Run (from the repository root, a few seconds):

    /tmp/tfenv/bin/python tools/make_train_fixture.py            # writes tests/fixtures/train_steps_025.npz
    /tmp/tfenv/bin/python tools/make_train_fixture.py --out DIR  # elsewhere

Deterministic: fixed seeds, TF_ENABLE_ONEDNN_OPTS=0, one TF thread.
"""

import argparse
import io
import os
import sys
import tarfile
import tempfile
import zipfile

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()
v1 = tf.compat.v1

BN_EPSILON = 0.001
MULT = 0.25
BATCH, HEIGHT, WIDTH, CLASSES = 8, 67, 75, 4
LEARNING_RATE, MOMENTUM, BN_MOMENTUM, STEPS = 0.0005, 0.9, 0.99, 3
LOGITS = "MobilenetV1/Logits/Conv2d_1c_1x1"

CONV_DEFS = [("conv", 2, 32)] + [
    ("sep", s, d)
    for s, d in [
        (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
        (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024),
    ]
]


def depth(d):
    return max(int(d * MULT), 8)


def load_checkpoint(tgz):
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        reader = tf.train.load_checkpoint(os.path.join(tmp, "mobilenet_v1_0.25_128.ckpt"))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def build(ckpt, head_w, head_b):
    """The train graph; returns (images, labels, loss, train_op, variables by name, checks)."""
    variables = {}

    def var(name, trainable=True):
        full = v1.get_variable_scope().name + "/" + name
        value = ckpt[full]
        v = v1.get_variable(name, initializer=tf.constant(value), trainable=trainable, use_resource=True)
        variables[full] = v
        return v

    images = v1.placeholder(tf.float32, [BATCH, HEIGHT, WIDTH, 3], name="images")
    labels = v1.placeholder(tf.int32, [BATCH], name="labels")
    updates, checks = [], []

    def bn_relu6(net):
        with v1.variable_scope("BatchNorm"):
            beta, gamma = var("beta"), var("gamma")
            mean, variance = var("moving_mean", False), var("moving_variance", False)
            y, batch_mean, batch_var = v1.nn.fused_batch_norm(
                net, gamma, beta, epsilon=BN_EPSILON, is_training=True, name="FusedBatchNormV3")
            from tensorflow.python.training import moving_averages
            updates.append(moving_averages.assign_moving_average(mean, batch_mean, BN_MOMENTUM, zero_debias=False))
            updates.append(moving_averages.assign_moving_average(variance, batch_var, BN_MOMENTUM,
                                                                 zero_debias=False))
            checks.append((net, batch_var))
        return tf.nn.relu6(y, name="Relu6")

    net = images * 2.0 - 1.0
    with v1.variable_scope("MobilenetV1"):
        for i, (kind, stride, d) in enumerate(CONV_DEFS):
            cout = depth(d)
            if kind == "conv":
                with v1.variable_scope("Conv2d_%d" % i):
                    net = tf.nn.conv2d(net, var("weights"), [1, stride, stride, 1], "SAME")
                    net = bn_relu6(net)
                continue
            with v1.variable_scope("Conv2d_%d_depthwise" % i):
                net = tf.nn.depthwise_conv2d(net, var("depthwise_weights"), [1, stride, stride, 1], "SAME")
                net = bn_relu6(net)
            with v1.variable_scope("Conv2d_%d_pointwise" % i):
                net = tf.nn.conv2d(net, var("weights"), [1, 1, 1, 1], "SAME")
                net = bn_relu6(net)
        pooled = tf.reduce_mean(net, [1, 2])
        with v1.variable_scope("Logits/Conv2d_1c_1x1"):
            w = v1.get_variable("weights", initializer=tf.constant(head_w), use_resource=True)
            b = v1.get_variable("biases", initializer=tf.constant(head_b), use_resource=True)
            variables[LOGITS + "/weights"], variables[LOGITS + "/biases"] = w, b
        logits = tf.matmul(pooled, w) + b
    loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
    with tf.control_dependencies(updates):
        train_op = v1.train.MomentumOptimizer(LEARNING_RATE, MOMENTUM).minimize(loss)
    return images, labels, loss, train_op, variables, checks


def write_npz(path, arrays):
    """Like np.savez_compressed but with fixed zip timestamps (byte-reproducible)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(2018, 2, 22, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--steps", type=int, default=STEPS, help="for experiments; the fixture has %d" % STEPS)
    ap.add_argument("--threads", type=int, default=1, help="TF intra-op threads (the fixture: 1)")
    args = ap.parse_args()
    ckpt = load_checkpoint("tests/fixtures/mobilenet_v1_0.25_128.tgz")
    rng = np.random.default_rng(13)
    images = np.round(rng.random((BATCH, HEIGHT, WIDTH, 3)) * 256).clip(0, 256).astype(np.float32) / 256
    # Smooth the noise a little so the features differ between images more than per-pixel noise does.
    images = ((images + np.roll(images, 1, axis=1) + np.roll(images, 1, axis=2)) / 3 * 256).round() / 256
    images = images.astype(np.float32)
    labels = np.array([0, 1, 2, 3, 3, 2, 1, 0], np.int32)
    feat = depth(1024)
    head_w = (np.round(rng.normal(0, 0.1, (feat, CLASSES)) * 256) / 256).astype(np.float32)
    head_b = (np.round(rng.normal(0, 0.1, CLASSES) * 256) / 256).astype(np.float32)

    graph = tf.Graph()
    with graph.as_default():
        x, y, loss, train_op, variables, checks = build(ckpt, head_w, head_b)
        config = v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1)
        with v1.Session(graph=graph, config=config) as sess:
            sess.run(v1.global_variables_initializer())
            feed = {x: images, y: labels}
            # FusedBatchNormV3 in training reports the Bessel-corrected variance (n / (n - 1) x the biased one).
            pre, reported = sess.run(checks[0], feed)
            n = pre.shape[0] * pre.shape[1] * pre.shape[2]
            biased = pre.reshape(-1, pre.shape[-1]).astype(np.float64).var(axis=0)
            if not np.allclose(reported, biased * n / (n - 1), rtol=1e-4):
                sys.exit("FusedBatchNormV3's training variance is not the Bessel-corrected one")
            losses = []
            for _ in range(args.steps):
                value, _ = sess.run([loss, train_op], feed)
                losses.append(value)
            after = sess.run(variables)
    losses = np.array(losses, np.float32)
    if not (np.all(np.isfinite(losses)) and (len(losses) == 1 or abs(losses[-1] - losses[0]) > 1e-3)):
        sys.exit("losses %s: expected finite and changing" % losses)
    out = {
        "images": images,
        "labels": labels,
        "head_weights_init": head_w,
        "head_biases_init": head_b,
        "losses": losses,
        "settings": np.array([LEARNING_RATE, MOMENTUM, BN_MOMENTUM, args.steps], np.float64),
    }
    for name, value in sorted(after.items()):
        if name == LOGITS + "/weights":
            value = value.reshape(1, 1, *value.shape)
        out["after/" + name] = np.asarray(value, np.float32)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "train_steps_025.npz")
    write_npz(path, out)
    print("wrote %s: losses %s, %d variables" % (path, losses, len(after)))


if __name__ == "__main__":
    main()
