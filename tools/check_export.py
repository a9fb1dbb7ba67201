#!/usr/bin/env python3
"""Runs what `mnv1 convert` exports in other runtimes and compares with mnv1 itself.

Exports (with the given mnv1 binary) a classifier and a feature-vector model, each as .tflite and
.onnx, then runs them on the same input tensors in
  - TensorFlow Lite / LiteRT (tf.lite.Interpreter, the whole batch at once: dynamic batch),
  - MediaPipe's ImageClassifier and ImageEmbedder (labels and normalisation from the metadata
    alone; fed uint8 images already at the model's size, so MediaPipe does no resizing),
  - ONNX Runtime (NHWC input in [0, 1], the whole batch),
and compares probabilities (tolerance 1e-5), features (1e-4), top-1 and category names with
`mnv1 classify` / `mnv1 embed` on .npy copies of the same tensors.

Inputs: the golden [-1,1] tensors (when the model is 128x128) and the first N photos of a folder,
decoded, central-cropped (0.875) and resized with TensorFlow's own ops (TF-Slim eval
preprocessing), then rounded to uint8 so that every runtime, MediaPipe included, sees the same
pixels.

Not run by CI. Environment (see README "Ship it"): /tmp/tfenv (tensorflow, onnxruntime, numpy)
plus mediapipe in a venv that also sees tfenv's packages:

  python3 -m venv /tmp/venv-i14 && /tmp/venv-i14/bin/pip install mediapipe
  echo /tmp/tfenv/lib/python3.11/site-packages > /tmp/venv-i14/lib/python3.11/site-packages/tfenv.pth
  /tmp/venv-i14/bin/python tools/check_export.py --mnv1 target/release/mnv1 \\
      --weights ../shared/testdata/weights/mobilenet_v1_0.25_128.tflite --variant 025_128
  /tmp/venv-i14/bin/python tools/check_export.py --mnv1 target/release/mnv1 --model /tmp/ft4

With --quantized SRC --variant V (a full-integer .tflite, e.g. tests/fixtures/int8_025_128.tflite
--variant 025_128) the check is
of the quantized export instead: `mnv1 convert SRC` writes it with uint8 input and output; TFLite
runs it on the uint8 pixels with its reference kernels and mnv1 (classify / embed on the exported
file) must agree bit for bit on the integers (the pooled features, the logits), TFLite's uint8
probabilities within one step (1/256) of mnv1's float softmax of those logits (classify reports
the softmax in float); MediaPipe's ImageClassifier runs it from its metadata alone and must give
exactly what TFLite's default kernels (XNNPACK, as MediaPipe runs it) give.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

PROB_TOL = 1e-5
FEAT_TOL = 1e-4


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{r.stderr}")
    return r.stdout


def load_inputs(args, size):
    """(names, uint8 images or None, float32 [N,H,W,3] in [0,1])."""
    import tensorflow as tf

    names, u8s, x01 = [], [], []
    if size == 128 and os.path.isdir(args.golden):
        for f in sorted(os.listdir(args.golden)):
            if f.endswith("_128.input"):
                x = np.fromfile(os.path.join(args.golden, f), "<f4").reshape(128, 128, 3)
                names.append("golden/" + f)
                u8s.append(None)
                x01.append((x + 1.0) / 2.0)
    photos = sorted(f for f in os.listdir(args.photos) if f.endswith(".JPEG"))[: args.n]
    for f in photos:
        img = tf.io.decode_jpeg(tf.io.read_file(os.path.join(args.photos, f)), channels=3)
        img = tf.image.convert_image_dtype(img, tf.float32)
        img = tf.image.central_crop(img, 0.875)
        img = tf.compat.v1.image.resize_bilinear(img[None], [size, size], align_corners=False)[0]
        u8 = np.clip(np.round(img.numpy() * 255.0), 0, 255).astype(np.uint8)
        names.append(f)
        u8s.append(u8)
        x01.append(u8.astype(np.float32) / 255.0)
    return names, u8s, np.stack(x01).astype(np.float32)


def mnv1_features(args, model_args, npys):
    """mnv1's features [N,C] on the .npy files."""
    feats_file = os.path.join(args.work, "mnv1_features.npy")
    sh([args.mnv1, "embed", *model_args, "--out", feats_file, *npys])
    order = open(feats_file + ".paths.txt").read().splitlines()
    feats = np.load(feats_file)
    return np.stack([feats[order.index(n)] for n in npys])


def mnv1_outputs(args, model_args, npys, classes):
    """mnv1's probabilities [N,K], logits [N,K], labels [K] and features [N,C] on the .npy files."""
    out = sh([args.mnv1, "classify", *model_args, "-k", str(classes), "--format", "jsonl", *npys])
    by_path = {}
    labels = [None] * classes
    for line in out.splitlines():
        rec = json.loads(line)
        p = np.zeros(classes)
        logit = np.zeros(classes)
        for pred in rec["predictions"]:
            p[pred["index"]] = pred["probability"]
            logit[pred["index"]] = pred["logit"]
            labels[pred["index"]] = pred["label"]
        by_path[rec["path"]] = (p, logit)
    probs = np.stack([by_path[n][0] for n in npys])
    logits = np.stack([by_path[n][1] for n in npys])
    return probs, logits, labels, mnv1_features(args, model_args, npys)


def run_tflite(path, x):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=path)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def run_onnx(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def run_tflite_quantized(path, u8s, tensor_name, reference=True):
    """The uint8 output and the int8 tensor `tensor_name` (None: skipped) per image, run one at a
    time. `reference`: TFLite's reference kernels (BUILTIN_REF), which mnv1 equals bit for bit;
    else its default kernels and XNNPACK, as MediaPipe runs them (XNNPACK requantizes in fp32)."""
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType
    interp = tf.lite.Interpreter(
        model_path=path, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=resolver.BUILTIN_REF if reference else resolver.AUTO)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    inner = None
    if tensor_name:
        inner = next(t for t in interp.get_tensor_details() if t["name"] == tensor_name)
    outs, inners = [], []
    for u8 in u8s:
        interp.set_tensor(inp["index"], u8[None])
        interp.invoke()
        outs.append(interp.get_tensor(out["index"])[0].copy())
        if inner:
            inners.append(interp.get_tensor(inner["index"]).reshape(-1).copy())
    return np.stack(outs), out["quantization"], (np.stack(inners), inner["quantization"]) if inner else None


def check_quantized(args, src):
    """The uint8-io export of the quantized model `src` against mnv1 and MediaPipe."""
    names, u8s, x01 = load_inputs(args, args.size)
    u8s = [u if u is not None else np.round(x * 255.0).astype(np.uint8) for u, x in zip(u8s, x01)]
    x01 = np.stack([u.astype(np.float32) / 255.0 for u in u8s])
    files = {}
    for head in ["classification", "feature-vector"]:
        f = os.path.join(args.work, f"quantized-{head}.tflite")
        sh([args.mnv1, "convert", *src, "--head", head, "--out", f])
        files[head] = f
    npys = []
    for i, x in enumerate(x01):
        p = os.path.join(args.work, f"input_{i:03}.npy")
        np.save(p, x)
        npys.append(p)
    classes = 1001
    print(f"{len(names)} inputs as uint8 pixels, {args.size}x{args.size}; quantized exports in {args.work}")
    ok = True
    for head, f in files.items():
        model_args = ["--weights", f, "--variant", args.variant]
        if head == "feature-vector":
            feats = mnv1_features(args, model_args, npys)
            out, (scale, zp), _ = run_tflite_quantized(f, u8s, None)
            mine = np.round(feats / scale) + zp
            print("TensorFlow Lite reference kernels, feature-vector export (uint8 output):")
            ok &= report("pooled features, integers", out, mine, 0)
            continue
        probs, logits, labels, _ = mnv1_outputs(args, model_args, npys, classes)
        out, (scale, zp), (lq, (lscale, lzp)) = run_tflite_quantized(
            f, u8s, "MobilenetV1/Logits/Conv2d_1c_1x1/BiasAdd")
        print("TensorFlow Lite reference kernels, classifier export (uint8 output):")
        ok &= report("logits (int8 inside the graph), integers", lq, np.round(logits / lscale) + lzp, 0)
        tfl_probs = scale * (out.astype(np.float64) - zp)
        ok &= report("uint8 probabilities vs mnv1's softmax", tfl_probs, probs, 1.0 / 256)
        fast, _, _ = run_tflite_quantized(f, u8s, None, reference=False)
        fast_probs = scale * (fast.astype(np.float64) - zp)
        print("TensorFlow Lite default kernels (XNNPACK), for reference:")
        report("uint8 probabilities vs the reference kernels'", fast_probs, tfl_probs, 1.0 / 256)
        try:
            mp_probs, mp_names = run_mediapipe_classifier(f, u8s, classes)
        except Exception as exc:  # reported, not hidden: the check then fails
            print(f"MediaPipe: could not run: {exc!r}")
            return False
        print(f"MediaPipe ImageClassifier ({len(u8s)} images, uint8, metadata only):")
        ok &= report("uint8 probabilities vs TFLite default kernels'", mp_probs, fast_probs, 0)
        bad = sum(n != labels for n in mp_names)
        print(f"  category names equal to mnv1's labels: {len(mp_names) - bad}/{len(mp_names)} images  "
              f"{'ok' if bad == 0 else 'FAIL'}")
        ok &= bad == 0
    return ok


def classifier(path, classes):
    from mediapipe.tasks.python import BaseOptions, vision

    return vision.ImageClassifier.create_from_options(
        vision.ImageClassifierOptions(
            base_options=BaseOptions(model_asset_path=path), max_results=classes
        )
    )


def classify_mediapipe(clf, u8, classes):
    import mediapipe as mp

    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(u8))
    p = np.zeros(classes)
    n = [None] * classes
    for c in clf.classify(image).classifications[0].categories:
        p[c.index] = c.score
        n[c.index] = c.category_name
    return p, n


def run_mediapipe_classifier(path, u8s, classes):
    clf = classifier(path, classes)
    rows = [classify_mediapipe(clf, u8, classes) for u8 in u8s]
    clf.close()
    return np.stack([p for p, _ in rows]), [n for _, n in rows]


def run_mediapipe(cls_path, feat_path, u8s, classes):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    clf = classifier(cls_path, classes)
    emb = vision.ImageEmbedder.create_from_options(
        vision.ImageEmbedderOptions(
            base_options=BaseOptions(model_asset_path=feat_path), l2_normalize=False, quantize=False
        )
    )
    probs, names, feats = [], [], []
    for u8 in u8s:
        p, n = classify_mediapipe(clf, u8, classes)
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(u8))
        probs.append(p)
        names.append(n)
        feats.append(np.array(emb.embed(image).embeddings[0].embedding))
    clf.close()
    emb.close()
    return np.stack(probs), names, np.stack(feats)


def report(what, got, want, tol):
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    top = (got.argmax(1) == want.argmax(1)).sum() if got.ndim == 2 and what.endswith("probabilities") else None
    ok = d.max() <= tol and (top is None or top == len(got))
    top_s = f", top-1 identical {top}/{len(got)}" if top is not None else ""
    print(f"  {what:44s} max |diff| {d.max():.3g} (mean {d.mean():.3g}, tol {tol:g}){top_s}  {'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnv1", required=True, help="the mnv1 binary")
    ap.add_argument("--weights", help="weights file (with --variant)")
    ap.add_argument("--variant")
    ap.add_argument("--model", help="a fine-tuned model directory instead of --weights/--variant")
    ap.add_argument("--golden", default="../shared/testdata/golden")
    ap.add_argument("--photos", default="../shared/testdata/imagenet-sample-200")
    ap.add_argument("-n", type=int, default=200, help="how many photos")
    ap.add_argument("--work", help="where exports and inputs go (default: a temporary directory)")
    ap.add_argument("--quantized", metavar="SRC",
                    help="check the uint8-io export of this full-integer .tflite instead")
    args = ap.parse_args()
    args.work = args.work or tempfile.mkdtemp(prefix="mnv1-export-")
    os.makedirs(args.work, exist_ok=True)
    if args.quantized:
        if not args.variant:
            sys.exit("--quantized needs --variant (e.g. 025_128): mnv1 classify takes it")
        args.size = int(args.variant.split("_")[-1])
        ok = check_quantized(args, [args.quantized])
        print("all within tolerance" if ok else "SOME CHECKS FAILED")
        return 0 if ok else 1

    if args.model:
        manifest = json.load(open(os.path.join(args.model, "manifest.json")))
        size, classes = manifest["input_size"], len(manifest["classes"])
        src, model_args = ["--model", args.model], ["--model", args.model]
    else:
        size = int(args.variant.split("_")[-1])
        classes = 1001
        src = [args.weights, "--variant", args.variant]
        model_args = ["--weights", args.weights, "--variant", args.variant]
    files = {}
    for head, ext in [("classification", "tflite"), ("classification", "onnx"),
                      ("feature-vector", "tflite"), ("feature-vector", "onnx")]:
        f = os.path.join(args.work, f"{head}.{ext}")
        sh([args.mnv1, "convert", *src, "--head", head, "--out", f])
        files[head, ext] = f

    names, u8s, x01 = load_inputs(args, size)
    npys = []
    for i, x in enumerate(x01):
        p = os.path.join(args.work, f"input_{i:03}.npy")
        np.save(p, x)
        npys.append(p)
    print(f"{len(names)} inputs ({sum(u is None for u in u8s)} golden, {sum(u is not None for u in u8s)} photos), "
          f"{size}x{size}, {classes} classes; exports in {args.work}")
    probs, logits, labels, feats = mnv1_outputs(args, model_args, npys, classes)

    ok = True
    print("TensorFlow Lite (tf.lite.Interpreter), whole batch:")
    x_tfl = (x01 * 2.0 - 1.0).astype(np.float32)
    ok &= report("classifier .tflite probabilities", run_tflite(files["classification", "tflite"], x_tfl), probs, PROB_TOL)
    ok &= report("feature-vector .tflite features", run_tflite(files["feature-vector", "tflite"], x_tfl), feats, FEAT_TOL)

    print("ONNX Runtime, whole batch:")
    lo = run_onnx(files["classification", "onnx"], x01).astype(np.float64)
    e = np.exp(lo - lo.max(1, keepdims=True))
    ok &= report("classifier .onnx softmax(logits) probabilities", e / e.sum(1, keepdims=True), probs, PROB_TOL)
    report("classifier .onnx logits (for reference)", lo, logits, FEAT_TOL)
    ok &= report("feature-vector .onnx features", run_onnx(files["feature-vector", "onnx"], x01), feats, FEAT_TOL)

    photos = [i for i, u in enumerate(u8s) if u is not None]
    try:
        mp_probs, mp_names, mp_feats = run_mediapipe(
            files["classification", "tflite"], files["feature-vector", "tflite"],
            [u8s[i] for i in photos], classes)
    except Exception as exc:  # reported, not hidden: the check then fails
        print(f"MediaPipe: could not run: {exc!r}")
        return 1
    print(f"MediaPipe ImageClassifier / ImageEmbedder ({len(photos)} photos, uint8, metadata only):")
    ok &= report("classifier .tflite probabilities", mp_probs, probs[photos], PROB_TOL)
    ok &= report("feature-vector .tflite features", mp_feats, feats[photos], FEAT_TOL)
    bad = sum(n != labels for n in mp_names)
    print(f"  category names equal to mnv1's labels: {len(mp_names) - bad}/{len(mp_names)} images  "
          f"{'ok' if bad == 0 else 'FAIL'}")
    ok &= bad == 0
    print("all within tolerance" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
