#!/usr/bin/env python3
"""The "Python user's loop": the end-to-end baseline that `mnv1` is compared with. For every JPEG
in DIR (sorted), in one process, one after another: PIL decode -> MOBILENET_V1.md's eval
preprocessing (EXIF orientation, central crop 0.875, TF1 bilinear resize without half-pixel
centres, x*2-1) -> tf.lite.Interpreter.invoke() (XNNPACK) -> top-1 index.

stdout: one line per image, `path<TAB>top-1 index` (1001 classes, 0 = background).
stderr: last line, one JSON object {"images", "wall_s", "images_per_s"}, timed from the first file
open to the last result (interpreter setup and the directory listing excluded).
Resize and scaling match TensorFlow exactly; PIL decodes with libjpeg's accurate IDCT where
tf.io.decode_jpeg uses the fast one (about 1 level apart on average). On the 200 photos of
../shared/testdata/imagenet-sample-200 this loop gives top-1 101/200, the same as its REFERENCE.md.

The default model is the real mobilenet_v1_0.25_128.tflite (float input in [-1,1]). Any float
.tflite with an NHWC [1,R,R,3] input also runs, e.g. peers.py's random-weight Keras MobileNet
/tmp/mnv1-peers/mnv1_100_224.tflite (we have no real 1.0_224 .tflite): it gets the same [-1,1]
input (what Keras' MobileNet preprocess_input gives too) at the size it declares; its top-1
means nothing, only its speed counts.

Threads: `--threads N` passes num_threads=N to the interpreter (2, every core here, is this
loop at its strongest); `--threads 0` leaves TFLite's own default, what a plain
`tf.lite.Interpreter(model_path=...)` gives (one thread with tensorflow-cpu 2.21: user time
equals wall time). bench/README.md compares mnv1 with both.

needs: the peers' venv of ../shared/bench/peers.py plus pillow (tensorflow-cpu, numpy, pillow).
Not run by CI.
run:   /tmp/peers/bin/python tools/python_loop.py --threads 1 /tmp/e2e/jpegs > top1.tsv
"""
import argparse, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
from PIL import Image, ImageOps
import tensorflow as tf

DEFAULT_MODEL = "/work/shared/testdata/weights/mobilenet_v1_0.25_128.tflite"


def axis(n, out):
    """TF1 resize_bilinear(align_corners=False, half_pixel_centers=False) along one axis."""
    src = np.arange(out, dtype=np.float32) * np.float32(n / out)
    i0 = np.floor(src).astype(np.intp)
    return i0, np.minimum(i0 + 1, n - 1), src - i0.astype(np.float32)


def preprocess(path, size):
    img = Image.open(path)
    ImageOps.exif_transpose(img, in_place=True)
    a = np.asarray(img.convert("RGB"))
    h, w = a.shape[:2]
    y, x = int((h - h * 0.875) / 2), int((w - w * 0.875) / 2)
    a = a[y:h - y, x:w - x]
    # Gathering the four neighbours before converting to float is exact and far cheaper than
    # converting the whole crop.
    y0, y1, fy = axis(a.shape[0], size)
    x0, x1, fx = axis(a.shape[1], size)
    scale = np.float32(1 / 255)
    tl, tr = a[y0][:, x0] * scale, a[y0][:, x1] * scale
    bl, br = a[y1][:, x0] * scale, a[y1][:, x1] * scale
    fx = fx[None, :, None]
    top = tl + (tr - tl) * fx
    bottom = bl + (br - bl) * fx
    out = top + (bottom - top) * fy[:, None, None]
    return (out * 2 - 1)[None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--size", type=int, help="input size (default: the model's own)")
    ap.add_argument("--threads", type=int, default=1,
                    help="TFLite threads; 0 leaves TFLite's own default (what tf.lite.Interpreter(path) gives)")
    ap.add_argument("dir")
    a = ap.parse_args()

    it = tf.lite.Interpreter(model_path=a.model, num_threads=a.threads or None)
    inp = it.get_input_details()[0]
    if inp["dtype"] != np.float32:
        sys.exit(f"{a.model}: input dtype {inp['dtype'].__name__}, only float32 models are supported")
    size = a.size or int(inp["shape"][1])
    if size != inp["shape"][1]:
        it.resize_tensor_input(inp["index"], [1, size, size, 3])
    it.allocate_tensors()
    out_index = it.get_output_details()[0]["index"]
    paths = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir)
                   if f.lower().endswith((".jpg", ".jpeg")))

    t0 = time.perf_counter()
    for p in paths:
        it.set_tensor(inp["index"], preprocess(p, size))
        it.invoke()
        print(f"{p}\t{int(np.argmax(it.get_tensor(out_index)[0]))}")
    wall = time.perf_counter() - t0
    print(json.dumps({"images": len(paths), "wall_s": round(wall, 3),
                      "images_per_s": round(len(paths) / wall, 1)}), file=sys.stderr)


if __name__ == "__main__":
    main()
