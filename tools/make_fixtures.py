#!/usr/bin/env python3
"""Generate TensorFlow-produced parity fixtures for mnv1 (tests/fixtures/).

What it produces (per variant 025_128 = depth multiplier 0.25 @ 128, 050_160 = 0.5 @ 160):

  tests/fixtures/mobilenet_v1_0.25_128.tgz   release-style tarball, flat (no directory):
      mobilenet_v1_0.25_128.ckpt.index
      mobilenet_v1_0.25_128.ckpt.data-00000-of-00001
      mobilenet_v1_0.25_128.tflite
    The checkpoint is a real TF V2 checkpoint written by tf.compat.v1.train.Saver.  For 025_128 it
    also carries what the real release checkpoints carry and readers must ignore: `global_step`
    (int64) and, for EVERY variable, `<name>/RMSProp`, `<name>/RMSProp_1` and
    `<name>/ExponentialMovingAverage` (filled with constants 1.0, 0.0 and 0.0 so they compress to
    nothing and would visibly break the outputs if a reader picked them up).
  tests/fixtures/mobilenet_v1_0.5_160.tgz    the same for 0.5 @ 160 (no optimizer/EMA extras).
  tests/fixtures/hub_025_128.tar.gz          TF-Hub-style: variables/ (directory entry),
      variables/variables.index, variables/variables.data-00000-of-00001, every tensor name
      prefixed `module/`, model variables only.
  tests/fixtures/golden_025_128.npz, golden_050_160.npz   goldens, see below.

The weights are NOT trained: every variable is drawn from a seeded numpy RNG (see make_values):
He-scaled conv / depthwise filters, pointwise and logits filters centred over their input channels,
gamma and moving_variance uniform in [0.5, 1.5], beta and moving_mean ~ N(0, 0.1), logits biases
calibrated so the logits depend strongly on the input (different top-1 for every golden input,
about 1% of ReLU6 outputs clamped at 6, logits std ~1).  All values are quantised to integer
multiples of a power of two (filters <= 5 significant bits, BN parameters <= 9, biases <= 14), so
the float32 data gzip-compresses well and TF and Rust see bit-identical weights.

The graph is TF-Slim research/slim/nets/mobilenet_v1.py (mobilenet_v1 with global_pool=True,
spatial_squeeze=True, is_training=False), written out with tf.compat.v1 ops because tf-slim 1.1.0's
layers do not import under TF 2.21 (they need the removed keras legacy layers).  The op structure
matches slim's: Conv2D / DepthwiseConv2dNative (SAME) -> FusedBatchNormV3 (is_training=False,
epsilon 0.001, center and scale) -> Relu6; reduce_mean over H,W (keepdims) named
MobilenetV1/Logits/AvgPool_1a (so any input size works); dropout is the identity at inference;
Conv2d_1c_1x1 with biases; squeeze to [N, 1001] (MobilenetV1/Logits/SpatialSqueeze).
Variable names are exactly TF-Slim's (MobilenetV1/Conv2d_0/weights, .../BatchNorm/gamma, ...,
MobilenetV1/Conv2d_1_depthwise/depthwise_weights, MobilenetV1/Logits/Conv2d_1c_1x1/{weights,biases}).

golden_<variant>.npz (np.savez_compressed layout, deflated members, fixed timestamps), all float32:
  input_0, input_1   [1, R, R, 3]   native size, values in [-1, 1] (multiples of 2^-7)
  input_2            [1, H, W, 3]   odd size: 97 x 131 (H x W) for 025_128, 161 x 161 for 050_160
  logits_{0,1,2}     [1001]         TF session run on the graph restored from the CHECKPOINT
  features_{0,1,2}   [256] / [512]  pooled Conv2d_13_pointwise output (same session run)
  tflite_logits_{0,1} [1001]        tf.lite.Interpreter on the .tflite, native-size inputs only

The TF goldens come from a fresh graph restored from the written checkpoint (not from the
in-memory values), so the checkpoint round-trip is part of what they pin.  The .tflite is made by
tf.compat.v1.lite.TFLiteConverter.from_session on a second restored graph with a fixed
[1, R, R, 3] input named `input` and output MobilenetV1/Logits/SpatialSqueeze (float32, no
optimisations / quantisation); the converter folds the BatchNorm into the conv filters and biases.

Checks (the script exits non-zero on failure): trainable parameter count (470,329 for 0.25,
1,332,105 for 0.5); logits not degenerate (std over classes in (0.5, 5), some but < 5% of ReLU6
outputs at 6, pooled-feature mean in (0.2, 3)); logits of the three inputs correlated < 0.8 with
three different argmaxes; max |TF - TFLite| on logits < 1e-3; the checkpoint reads back the exact
values; the npz and tarballs re-load.

Run (from the repository root; about a minute on 2 cores):

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-slim==1.1.0 numpy
    /tmp/tfenv/bin/python tools/make_fixtures.py            # writes tests/fixtures/
    /tmp/tfenv/bin/python tools/make_fixtures.py --out DIR  # elsewhere

Produced with Python 3.11.7, tensorflow-cpu 2.21.0, numpy 2.4.6 (tf-slim 1.1.0 installed but unused,
see above).  Deterministic: fixed seeds, TF_ENABLE_ONEDNN_OPTS=0, single-threaded TF sessions, tar members
with a fixed mtime (2018-02-22) and uid/gid 0, gzip header mtime 0, zip members with a fixed date;
rerunning gives identical bytes with the same versions.
"""

import argparse
import gzip
import io
import os
import shutil
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

NUM_CLASSES = 1001
BN_EPSILON = 0.001

# (kind, stride, depth) as in mobilenet_v1.py MOBILENETV1_CONV_DEFS.
CONV_DEFS = [("conv", 2, 32)] + [
    ("sep", s, d)
    for s, d in [
        (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
        (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024),
    ]
]

VARIANTS = {
    "025_128": dict(mult=0.25, res=128, stem="mobilenet_v1_0.25_128", seed=25128,
                    extras=True, hub=True, odd=(97, 131), params=470329),
    "050_160": dict(mult=0.5, res=160, stem="mobilenet_v1_0.5_160", seed=50160,
                    extras=False, hub=False, odd=(161, 161), params=1332105),
}


def depth(d, mult):
    return max(int(d * mult), 8)


# ----------------------------------------------------------------------------- graph

def _var(name, shape, trainable=True):
    collections = None if trainable else [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES]
    return v1.get_variable(name, shape=shape, dtype=tf.float32, initializer=v1.zeros_initializer(),
                           trainable=trainable, collections=collections, use_resource=False)


def _bn_relu6(net):
    c = net.shape[-1]
    with v1.variable_scope("BatchNorm"):
        beta = _var("beta", [c])
        gamma = _var("gamma", [c])
        mean = _var("moving_mean", [c], trainable=False)
        var = _var("moving_variance", [c], trainable=False)
        net, _, _ = v1.nn.fused_batch_norm(net, gamma, beta, mean=mean, variance=var,
                                           epsilon=BN_EPSILON, is_training=False,
                                           name="FusedBatchNormV3")
    return tf.nn.relu6(net, name="Relu6")


def mobilenet_v1(x, mult):
    """Returns (logits [N,1001], features [N,C], end_points) in scope MobilenetV1."""
    end_points = {}
    net = x
    with v1.variable_scope("MobilenetV1"):
        for i, (kind, stride, d) in enumerate(CONV_DEFS):
            cout = depth(d, mult)
            if kind == "conv":
                with v1.variable_scope("Conv2d_%d" % i):
                    w = _var("weights", [3, 3, net.shape[-1], cout])
                    net = tf.nn.conv2d(net, w, strides=[1, stride, stride, 1], padding="SAME",
                                       name="Conv2D")
                    net = _bn_relu6(net)
                end_points["Conv2d_%d" % i] = net
                continue
            with v1.variable_scope("Conv2d_%d_depthwise" % i):
                w = _var("depthwise_weights", [3, 3, net.shape[-1], 1])
                net = tf.nn.depthwise_conv2d(net, w, strides=[1, stride, stride, 1],
                                             padding="SAME", name="depthwise")
                net = _bn_relu6(net)
            end_points["Conv2d_%d_depthwise" % i] = net
            with v1.variable_scope("Conv2d_%d_pointwise" % i):
                w = _var("weights", [1, 1, net.shape[-1], cout])
                net = tf.nn.conv2d(net, w, strides=[1, 1, 1, 1], padding="SAME", name="Conv2D")
                net = _bn_relu6(net)
            end_points["Conv2d_%d_pointwise" % i] = net
        with v1.variable_scope("Logits"):
            net = tf.reduce_mean(net, axis=[1, 2], keepdims=True, name="AvgPool_1a")
            end_points["AvgPool_1a"] = net
            features = tf.squeeze(net, [1, 2], name="features")
            # Dropout_1b: identity when is_training=False.
            with v1.variable_scope("Conv2d_1c_1x1"):
                w = _var("weights", [1, 1, net.shape[-1], NUM_CLASSES])
                b = _var("biases", [NUM_CLASSES])
                net = tf.nn.conv2d(net, w, strides=[1, 1, 1, 1], padding="SAME", name="Conv2D")
                net = tf.nn.bias_add(net, b, name="BiasAdd")
            logits = tf.squeeze(net, [1, 2], name="SpatialSqueeze")
    end_points["Logits"] = logits
    return logits, features, end_points


def model_vars():
    return sorted(v1.global_variables(), key=lambda v: v.op.name)


# ----------------------------------------------------------------------------- values

def quantise(a, step):
    """Round to integer multiples of step (a power of two): exact in float32, few mantissa bits."""
    return (np.round(np.asarray(a, np.float64) / step) * step).astype(np.float32)


def pow2_step(std, levels_per_std=4):
    return 2.0 ** np.floor(np.log2(std / levels_per_std))


def make_values(variables, rng):
    """Seeded values keeping activations O(1) through the 14 layers (inference-mode BN).

    Conv2d_0 and the depthwise filters are He-scaled (std sqrt(2 / fan_in)).  The pointwise and
    logits weights are centred over the input channels (each output channel's weights sum to ~0)
    with std sqrt(4 / fan_in) and sqrt(16 / fan_in): ReLU6 outputs are positive, and without the
    centring their common mean dominates every later layer, so all inputs give nearly the same
    logits (correlation > 0.99).  The logits biases are set afterwards by calibrate_biases().
    """
    vals = {}
    for v in variables:
        name, shape = v.op.name, v.shape.as_list()
        leaf = name.rsplit("/", 1)[1]
        if leaf in ("weights", "depthwise_weights"):
            fan_in = shape[0] * shape[1] * shape[2]
            if leaf == "depthwise_weights" or "Conv2d_0/" in name:
                std, centre = np.sqrt(2.0 / (shape[0] * shape[1] * (1 if leaf.startswith("depth")
                                                                   else shape[2]))), False
            else:
                std, centre = np.sqrt((16.0 if "Logits" in name else 4.0) / fan_in), True
            w = rng.normal(0.0, std, shape)
            if centre:
                w -= w.mean(axis=2, keepdims=True)
            vals[name] = quantise(w, pow2_step(std))
        elif leaf in ("gamma", "moving_variance"):
            vals[name] = quantise(rng.uniform(0.5, 1.5, shape), 2.0 ** -6)
        elif leaf in ("beta", "moving_mean"):
            vals[name] = quantise(rng.normal(0.0, 0.1, shape), 2.0 ** -10)
        elif leaf == "biases":
            vals[name] = None  # calibrate_biases
        else:
            raise ValueError(name)
    return vals


def calibrate_biases(vals, mean_features, rng):
    """Logits biases = -W . mean feature (over calibration images) + N(0, 0.1): removes the
    input-independent part of the logits, so different images get different top classes."""
    name = "MobilenetV1/Logits/Conv2d_1c_1x1/"
    w = vals[name + "weights"][0, 0].astype(np.float64)
    b = -(mean_features.astype(np.float64) @ w) + rng.normal(0.0, 0.1, w.shape[1])
    vals[name + "biases"] = quantise(b, 2.0 ** -10)


def smooth_image(rng, h, w):
    """Image-like pattern in [-1, 1] (multiples of 2^-7): bilinear-upsampled coarse noise plus a
    few sinusoids per channel, with 2-4 flat-coloured disks (sharp edges) on top."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    disks = []
    for _ in range(rng.integers(2, 5)):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        disks.append(((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, rng.uniform(-1.5, 1.5, 3)))
    img = np.zeros((h, w, 3))
    for c in range(3):
        gh, gw = rng.integers(3, 9), rng.integers(3, 9)
        grid = rng.normal(0, 1, (gh, gw))
        gy, gx = yy * (gh - 1), xx * (gw - 1)
        y0, x0 = np.minimum(gy.astype(int), gh - 2), np.minimum(gx.astype(int), gw - 2)
        fy, fx = gy - y0, gx - x0
        coarse = (grid[y0, x0] * (1 - fy) * (1 - fx) + grid[y0 + 1, x0] * fy * (1 - fx)
                  + grid[y0, x0 + 1] * (1 - fy) * fx + grid[y0 + 1, x0 + 1] * fy * fx)
        waves = sum(np.sin(2 * np.pi * (rng.uniform(0.5, 6) * yy * np.cos(t) + rng.uniform(0.5, 6)
                                        * xx * np.sin(t)) + rng.uniform(0, 2 * np.pi))
                    for t in rng.uniform(0, np.pi, 3))
        v = 0.8 * coarse + 0.3 * waves
        for mask, colour in disks:
            v = np.where(mask, colour[c] + 0.3 * coarse, v)
        img[..., c] = np.tanh(v + 0.05 * rng.normal(0, 1, (h, w)))
    return quantise(img[None], 2.0 ** -7).clip(-1, 1)


# ----------------------------------------------------------------------------- io helpers

def session(graph):
    cfg = v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    return v1.Session(graph=graph, config=cfg)


TAR_MTIME = 1519257600  # 2018-02-22T00:00:00Z, the release date; fixed for reproducibility


def write_tar(path, members):
    """members: list of (arcname, bytes or None for a directory). Deterministic gzip'd ustar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for arcname, data in members:
            info = tarfile.TarInfo(arcname)
            info.mtime, info.uid, info.gid, info.uname, info.gname = TAR_MTIME, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


def write_npz(path, arrays):
    """Like np.savez_compressed but with fixed zip timestamps (byte-reproducible)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ----------------------------------------------------------------------------- per variant

def build_variant(key, cfg, out_dir, work):
    mult, res, stem = cfg["mult"], cfg["res"], cfg["stem"]
    rng = np.random.default_rng(cfg["seed"])
    print("=== %s (depth multiplier %s, resolution %d)" % (key, mult, res))

    # 1. Build, fill and save the checkpoint(s).
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, [None, None, None, 3], name="input")
        _, features, _ = mobilenet_v1(x, mult)
        variables = model_vars()
        trainable = v1.trainable_variables()
        n_params = sum(int(np.prod(v.shape.as_list())) for v in trainable)
        print("trainable parameters: %d (expected %d)" % (n_params, cfg["params"]))
        if n_params != cfg["params"]:
            sys.exit("parameter count mismatch for %s" % key)
        values = make_values(variables, rng)
        calibration = [smooth_image(rng, res, res) for _ in range(4)]
        save_map = {v.op.name: v for v in variables}
        if cfg["extras"]:
            with v1.variable_scope("extras"):
                step = v1.Variable(np.int64(123456), name="global_step", dtype=tf.int64)
                save_map["global_step"] = step
                for v in variables:
                    shape = v.shape.as_list()
                    for suffix, const in (("RMSProp", 1.0), ("RMSProp_1", 0.0),
                                          ("ExponentialMovingAverage", 0.0)):
                        ev = v1.Variable(np.full(shape, const, np.float32),
                                         name=v.op.name.replace("/", "_") + "_" + suffix)
                        save_map[v.op.name + "/" + suffix] = ev
        saver = v1.train.Saver(save_map, write_version=v1.train.SaverDef.V2)
        hub_saver = v1.train.Saver({"module/" + v.op.name: v for v in variables},
                                   write_version=v1.train.SaverDef.V2)
        with session(g) as sess:
            sess.run(v1.global_variables_initializer())
            for v in variables:
                if values[v.op.name] is not None:
                    v.load(values[v.op.name], sess)
            mean_features = np.mean([sess.run(features, {x: c})[0] for c in calibration], axis=0)
            calibrate_biases(values, mean_features, rng)
            biases = [v for v in variables if v.op.name.endswith("/biases")][0]
            biases.load(values[biases.op.name], sess)
            ckpt_prefix = os.path.join(work, stem + ".ckpt")
            saver.save(sess, ckpt_prefix, write_meta_graph=False, write_state=False)
            if cfg["hub"]:
                os.makedirs(os.path.join(work, "hub", "variables"))
                hub_saver.save(sess, os.path.join(work, "hub", "variables", "variables"),
                               write_meta_graph=False, write_state=False)

    # 2. Goldens from a fresh graph restored from the checkpoint.
    inputs = [smooth_image(rng, res, res), smooth_image(rng, res, res),
              smooth_image(rng, *cfg["odd"])]
    golden = {}
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, [None, None, None, 3], name="input")
        logits, features, end_points = mobilenet_v1(x, mult)
        restorer = v1.train.Saver({v.op.name: v for v in model_vars()})
        with session(g) as sess:
            restorer.restore(sess, ckpt_prefix)
            names = [n for n in end_points if n.startswith("Conv2d_")]
            shown = ["Conv2d_0"] + ["Conv2d_%d_pointwise" % j for j in (1, 5, 9, 13)]
            for i, inp in enumerate(inputs):
                lg, ft, *acts = sess.run([logits, features] + [end_points[n] for n in names],
                                         {x: inp})
                lg, ft = lg[0].astype(np.float32), ft[0].astype(np.float32)
                golden["input_%d" % i] = inp.astype(np.float32)
                golden["logits_%d" % i] = lg
                golden["features_%d" % i] = ft
                acts = dict(zip(names, acts))
                sat = np.mean([(a >= 6).mean() for a in acts.values()])
                stats = ", ".join("%s %.2f/%.3f" % (n[7:].replace("_pointwise", ""),
                                                    acts[n].mean(), (acts[n] >= 6).mean())
                                  for n in shown)
                print("input_%d %s: logits std %.3f range [%.2f, %.2f] argmax %d; features mean "
                      "%.3f std %.3f zero %.2f; ReLU6 at 6: %.4f of all activations | layer "
                      "mean/at-6: %s" % (i, "x".join(map(str, inp.shape[1:3])), lg.std(),
                                         lg.min(), lg.max(), lg.argmax(), ft.mean(), ft.std(),
                                         (ft == 0).mean(), sat, stats))
                # Not degenerate: spread-out logits, some but few ReLU6 clamps (so a ReLU-for-
                # ReLU6 bug shows), features neither all zero nor all saturated.
                if not (np.isfinite(lg).all() and 0.5 < lg.std() < 5 and 1e-4 < sat < 0.05
                        and 0.2 < ft.mean() < 3):
                    sys.exit("degenerate logits/features for %s input %d" % (key, i))
    l0, l1, l2 = (golden["logits_%d" % i] for i in range(3))
    corr = max(np.corrcoef(a, b)[0, 1] for a, b in ((l0, l1), (l0, l2), (l1, l2)))
    print("max logits correlation between inputs: %.3f" % corr)
    if corr > 0.8 or len({int(l.argmax()) for l in (l0, l1, l2)}) < 3:
        sys.exit("logits barely depend on the input for %s" % key)

    # 3. TFLite from a fixed-shape restored graph.
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, [1, res, res, 3], name="input")
        logits, _, _ = mobilenet_v1(x, mult)
        restorer = v1.train.Saver({v.op.name: v for v in model_vars()})
        with session(g) as sess:
            restorer.restore(sess, ckpt_prefix)
            converter = v1.lite.TFLiteConverter.from_session(sess, [x], [logits])
            tflite_bytes = converter.convert()
    # Builtin kernels only (no XNNPACK delegate), so the op list is the model's own.
    interp = tf.lite.Interpreter(
        model_content=tflite_bytes, num_threads=1,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}

    def desc(t):
        return "%s %s" % (tensors[t]["name"], [int(d) for d in tensors[t]["shape"]])

    print("tflite operators (%d bytes; inputs after the activation: filter, bias / axes):"
          % len(tflite_bytes))
    for op in interp._get_ops_details():
        ins = [desc(t) for t in op["inputs"] if t >= 0]
        print("  %2d %-17s out %s" % (op["index"], op["op_name"], desc(op["outputs"][0])))
        for d in ins[1:]:
            print("       %s" % d)
    inp_det, out_det = interp.get_input_details()[0], interp.get_output_details()[0]
    print("tflite input %s, output %s" % (desc(inp_det["index"]), desc(out_det["index"])))
    worst = 0.0
    for i in (0, 1):
        interp.set_tensor(inp_det["index"], inputs[i])
        interp.invoke()
        tl = interp.get_tensor(out_det["index"])[0].astype(np.float32)
        golden["tflite_logits_%d" % i] = tl
        worst = max(worst, float(np.abs(tl - golden["logits_%d" % i]).max()))
    print("max |TF - TFLite| logits: %.3g" % worst)
    if worst > 1e-3:
        sys.exit("TFLite disagrees with TF for %s" % key)

    # 4. Pack.
    ckpt_members = [(stem + ".ckpt.index", read(ckpt_prefix + ".index")),
                    (stem + ".ckpt.data-00000-of-00001",
                     read(ckpt_prefix + ".data-00000-of-00001")),
                    (stem + ".tflite", tflite_bytes)]
    write_tar(os.path.join(out_dir, stem + ".tgz"), ckpt_members)
    if cfg["hub"]:
        vdir = os.path.join(work, "hub", "variables")
        write_tar(os.path.join(out_dir, "hub_%s.tar.gz" % key),
                  [("variables/", None),
                   ("variables/variables.data-00000-of-00001",
                    read(os.path.join(vdir, "variables.data-00000-of-00001"))),
                   ("variables/variables.index", read(os.path.join(vdir, "variables.index")))])
    write_npz(os.path.join(out_dir, "golden_%s.npz" % key), golden)

    # 5. Re-load checks.
    z = np.load(os.path.join(out_dir, "golden_%s.npz" % key))
    assert sorted(z.files) == sorted(golden), z.files
    for k, a in golden.items():
        assert z[k].dtype == np.float32 and np.array_equal(z[k], a), k
    with tarfile.open(os.path.join(out_dir, stem + ".tgz")) as t:
        assert t.getnames() == [m[0] for m in ckpt_members]
    reader = tf.train.load_checkpoint(ckpt_prefix)
    for name, val in values.items():
        assert np.array_equal(reader.get_tensor(name), val), name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("tensorflow %s, numpy %s" % (tf.__version__, np.__version__))
    for key in args.variants:
        work = tempfile.mkdtemp(prefix="mnv1_fixtures_")
        try:
            build_variant(key, VARIANTS[key], args.out, work)
        finally:
            shutil.rmtree(work)
    for f in sorted(os.listdir(args.out)):
        print("%10d  %s" % (os.path.getsize(os.path.join(args.out, f)), f))


if __name__ == "__main__":
    main()
