#!/usr/bin/env python3
"""Make tests/fixtures/preprocess/: TensorFlow's own preprocessing outputs, which
src/preprocess/ must reproduce bit for bit.

Needs TensorFlow (made with tensorflow-cpu 2.21, numpy 2) and nothing else; not run by CI.

    python tools/make_preprocess_fixtures.py [OUT_DIR]    # default tests/fixtures/preprocess

What it writes:
  *.png, *.jpg     small inputs from a seeded generator, encoded by tf.io.encode_png
                   and tf.io.encode_jpeg
  *.npy            TensorFlow's float32 HWC output for one case (np.save, '<f4')
  cases.tsv        one case a line: input, crop (a fraction or 'none'), out_h, out_w,
                   expected .npy
  pattern_*.npy    resize-only case on an input the Rust test rebuilds from a formula
  npy_*.npy        numpy-written files for the .npy reader (one valid NHWC, some refused)

The pipeline is TF-Slim's preprocess_for_eval, run as a tf.function whose input shape
is unknown (as in TF-Slim's eval graph, where the decoded image has a dynamic shape):
decode_png or decode_jpeg (channels=3, default dct_method) -> convert_image_dtype(float32) -> central_crop(fraction)
-> resize_bilinear(align_corners=False) [tf.compat.v1.image.resize_bilinear].
"""
import os
import sys

import numpy as np
import tensorflow as tf

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "preprocess")


def tf_pipeline(data_bytes, dtype, fraction, out_h, out_w):
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def run(data):
        if dtype == "jpeg":  # TF-Slim's decoder, with its default dct_method
            img = tf.io.decode_jpeg(data, channels=3)
        else:
            img = tf.io.decode_png(data, channels=3, dtype=dtype)
        img = tf.image.convert_image_dtype(img, tf.float32)
        if fraction is not None:
            img = tf.image.central_crop(img, central_fraction=fraction)
        crop_shape = tf.shape(img)[:2]
        img = tf.expand_dims(img, 0)
        img = tf.compat.v1.image.resize_bilinear(img, [out_h, out_w], align_corners=False)
        return tf.squeeze(img, [0]), crop_shape

    out, crop_shape = run(tf.constant(data_bytes))
    return out.numpy(), tuple(int(v) for v in crop_shape.numpy())


def eager_crop_shape(data_bytes, dtype, fraction):
    """Crop with static shapes (eager): the fraction stays a Python double."""
    if dtype == "jpeg":
        img = tf.io.decode_jpeg(data_bytes, channels=3)
    else:
        img = tf.io.decode_png(data_bytes, channels=3, dtype=dtype)
    return tuple(tf.image.central_crop(img, fraction).shape[:2])


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240601)
    inputs = {
        # name: (array, dtype for decode_png)
        "rgb_13x17.png": (rng.integers(0, 256, (13, 17, 3), dtype=np.uint8), tf.uint8),
        "rgb_37x29.png": (rng.integers(0, 256, (37, 29, 3), dtype=np.uint8), tf.uint8),
        "gray_alpha_9x7.png": (rng.integers(0, 256, (9, 7, 2), dtype=np.uint8), tf.uint8),
        "rgb16_11x10.png": (rng.integers(0, 65536, (11, 10, 3), dtype=np.uint16), tf.uint16),
        "gray_10x20.png": (rng.integers(0, 256, (10, 20, 1), dtype=np.uint8), tf.uint8),
    }
    png = {}
    for name, (arr, _) in inputs.items():
        png[name] = tf.io.encode_png(arr).numpy()
    # JPEGs (tf.io.encode_jpeg, i.e. libjpeg-turbo) of a smooth pattern plus noise, at
    # odd sizes so that chroma upsampling meets partial blocks: 4:2:0 baseline,
    # progressive 4:4:4, and greyscale.
    def smooth(h, w, ch):
        y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(ch), indexing="ij")
        v = 128 + 90 * np.sin(x / 5.0 + c) * np.cos(y / 7.0 - c) + rng.normal(0, 12, (h, w, ch))
        return np.clip(v, 0, 255).astype(np.uint8)
    jpegs = {
        "jpeg420_37x29.jpg": dict(image=smooth(37, 29, 3), quality=90),
        "jpeg444_progressive_23x31.jpg": dict(image=smooth(23, 31, 3), quality=95,
                                              progressive=True, chroma_downsampling=False),
        "jpeg_gray_19x13.jpg": dict(image=smooth(19, 13, 1), quality=85),
    }
    for name, args in jpegs.items():
        png[name] = tf.io.encode_jpeg(**args).numpy()
        inputs[name] = (None, "jpeg")
    for name, data in png.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    cases = [
        ("rgb_13x17.png", 0.875, 8, 8),
        ("rgb_13x17.png", 0.875, 11, 11),
        ("rgb_13x17.png", 1.0, 13, 17),      # no crop, same size: TF copies
        ("rgb_37x29.png", 0.875, 8, 8),
        ("rgb_37x29.png", 0.875, 11, 11),
        ("rgb_37x29.png", 0.875, 7, 13),
        ("rgb_37x29.png", None, 16, 20),
        ("rgb_37x29.png", 0.875, 40, 35),    # upscaling
        ("gray_alpha_9x7.png", 0.875, 5, 5),
        ("rgb16_11x10.png", 0.875, 6, 7),
        # 0.8 is not exact in float32: the graph's float32 -> float64 fraction crops
        # 10 x 20 to 10 x 18, where eager mode's Python double would give 8 x 16.
        ("gray_10x20.png", 0.8, 4, 9),
        # JPEG: the same-size cases compare the decoded pixels themselves.
        ("jpeg420_37x29.jpg", None, 37, 29),
        ("jpeg420_37x29.jpg", 0.875, 11, 11),
        ("jpeg444_progressive_23x31.jpg", None, 23, 31),
        ("jpeg_gray_19x13.jpg", None, 19, 13),
        ("jpeg_gray_19x13.jpg", 0.875, 7, 5),
    ]
    lines = []
    for name, fraction, h, w in cases:
        dtype = inputs[name][1]
        out, crop_shape = tf_pipeline(png[name], dtype, fraction, h, w)
        assert out.dtype == np.float32 and out.shape == (h, w, 3)
        crop = "none" if fraction is None else repr(fraction)
        exp = "%s_%s_%dx%d.npy" % (os.path.splitext(name)[0], crop, h, w)
        np.save(os.path.join(OUT, exp), out.astype("<f4"))
        lines.append("\t".join([name, crop, str(h), str(w), exp]))
        if fraction is not None:
            print("%s crop %s: graph crop shape %s, eager crop shape %s" % (
                name, crop, crop_shape, eager_crop_shape(png[name], dtype, fraction)))
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        f.write("# input\tcrop\tout_h\tout_w\texpected (made by tools/make_preprocess_fixtures.py)\n")
        f.write("\n".join(lines) + "\n")

    # Resize only, on a bigger input the Rust test rebuilds:
    # v = ((y * 31 + x * 17 + c * 101 + (y * x) % 7) % 256) as u8, then / 255 as TF does.
    y, x, c = np.meshgrid(np.arange(300), np.arange(257), np.arange(3), indexing="ij")
    pattern = ((y * 31 + x * 17 + c * 101 + (y * x) % 7) % 256).astype(np.uint8)
    img = tf.image.convert_image_dtype(tf.constant(pattern), tf.float32)
    for h, w in [(31, 29), (224, 3)]:
        out = tf.compat.v1.image.resize_bilinear(img[None], [h, w], align_corners=False)[0]
        np.save(os.path.join(OUT, "pattern_300x257_to_%dx%d.npy" % (h, w)),
                out.numpy().astype("<f4"))

    # .npy reader: v = ((n*1000 + y*100 + x*10 + c) % 97) / 96 in float32.
    n, y, x, c = np.meshgrid(np.arange(2), np.arange(3), np.arange(4), np.arange(3),
                             indexing="ij")
    k = ((n * 1000 + y * 100 + x * 10 + c) % 97).astype(np.float32)
    good = (k / np.float32(96)).astype("<f4")
    np.save(os.path.join(OUT, "npy_nhwc_2x3x4x3.npy"), good)
    np.save(os.path.join(OUT, "npy_f8.npy"), good[0].astype("<f8"))
    np.save(os.path.join(OUT, "npy_be.npy"), good[0].astype(">f4"))
    np.save(os.path.join(OUT, "npy_fortran.npy"), np.asfortranarray(good[0]))
    np.save(os.path.join(OUT, "npy_chw.npy"), np.ascontiguousarray(good[0].transpose(2, 0, 1)))
    print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
