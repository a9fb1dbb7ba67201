#!/usr/bin/env python3
"""Writes webdataset-style tar shards for the Spark example (examples/spark/README.md).

Each shard OUT/NNNNN.tar holds, per image, the members KEY.jpg, KEY.json and KEY.txt in that order
(the layout img2dataset writes): KEY is the 9-digit shard*10^4+i, the JSON carries the key, the
source file and the ImageNet label when known, the text is a caption.

Images come from SOURCE (default: ../shared/testdata/imagenet-sample-200 beside the repository,
real ImageNet photos, never committed) when that directory exists, otherwise they are synthetic
(numpy noise + gradients, seeded). When more images are asked for than SOURCE holds, the photos
are reused with a deterministic augmentation per pass (crop, mirror, JPEG quality), so every
image of a large set is different bytes. The output is deterministic: the same arguments on the
same Pillow/libjpeg give the same tar files byte for byte (fixed member order, mtime, owner).

    python3 examples/spark/make_shards.py --out /tmp/shards --shards 4 --per-shard 50
    python3 examples/spark/make_shards.py --out /tmp/big --shards 4 --per-shard 1250   # 5,000
    python3 examples/spark/make_shards.py --out /tmp/syn --shards 3 --per-shard 20 --synthetic

Needs numpy and Pillow (the Spark example's virtualenv has both).
"""

import argparse
import io
import json
import os
import sys
import tarfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.normpath(
    os.path.join(HERE, "..", "..", "..", "shared", "testdata", "imagenet-sample-200")
)
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def load_labels(source):
    """file -> label from labels.tsv (file, index, label) when present."""
    labels = {}
    path = os.path.join(source, "labels.tsv")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3 and not parts[0].startswith("#"):
                    labels[parts[0]] = parts[2]
    return labels


def photo_bytes(path, rep):
    """Pass 0: the file's own bytes. Pass r > 0: a deterministic variant of the photo."""
    with open(path, "rb") as f:
        data = f.read()
    if rep == 0:
        return data
    rng = np.random.default_rng(rep * 1_000_003 + sum(data[:64]))
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGB")
    w, h = img.size
    # Crop 80-100% of each side at a seeded offset, mirror every other pass.
    cw = max(16, int(w * rng.uniform(0.8, 1.0)))
    ch = max(16, int(h * rng.uniform(0.8, 1.0)))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rep % 2 == 1:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=int(rng.integers(80, 96)))
    return out.getvalue()


def synthetic_bytes(index, seed):
    """A seeded 160x120..320x240 RGB picture: colour gradients, a few rectangles, noise."""
    rng = np.random.default_rng([seed, index])
    w = int(rng.integers(160, 321))
    h = int(rng.integers(120, 241))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    t = (xx / w * rng.uniform(0.2, 1.0) + yy / h * rng.uniform(0.2, 1.0))[..., None]
    img = c0 + (c1 - c0) * np.clip(t, 0, 1)
    for _ in range(int(rng.integers(1, 5))):
        x0, x1 = sorted(rng.integers(0, w, size=2))
        y0, y1 = sorted(rng.integers(0, h, size=2))
        img[y0:y1 + 1, x0:x1 + 1] = rng.uniform(0, 255, size=3)
    img += rng.normal(0, 12, size=img.shape)
    arr = np.clip(img, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr, "RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for NNNNN.tar (created)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--per-shard", type=int, default=50, help="images per shard")
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="directory of photos (default: %(default)s)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic images even when --source exists")
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    if args.shards < 1 or args.per_shard < 1 or args.per_shard > 9999:
        ap.error("--shards >= 1 and 1 <= --per-shard <= 9999")

    photos = []
    labels = {}
    if not args.synthetic and os.path.isdir(args.source):
        photos = sorted(
            os.path.join(args.source, n) for n in os.listdir(args.source) if n.lower().endswith(IMAGE_EXT)
        )
        labels = load_labels(args.source)
    kind = f"photos from {args.source}" if photos else "synthetic images"

    os.makedirs(args.out, exist_ok=True)
    total = args.shards * args.per_shard
    n = 0
    for s in range(args.shards):
        final = os.path.join(args.out, f"{s:05d}.tar")
        tmp = final + ".tmp"
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(args.per_shard):
                key = f"{s:05d}{i:04d}"
                meta = {"key": key, "shard": s, "index": n}
                if photos:
                    src = photos[n % len(photos)]
                    rep = n // len(photos)
                    data = photo_bytes(src, rep)
                    base = os.path.basename(src)
                    meta.update(source=base, augmentation_pass=rep)
                    label = labels.get(base)
                    if label is not None:
                        meta["label"] = label
                    caption = label or os.path.splitext(base)[0]
                else:
                    data = synthetic_bytes(n, args.seed)
                    meta.update(source="synthetic", seed=args.seed)
                    caption = f"synthetic image {n}"
                add_member(tar, f"{key}.jpg", data)
                add_member(tar, f"{key}.json", (json.dumps(meta, sort_keys=True) + "\n").encode())
                add_member(tar, f"{key}.txt", (caption + "\n").encode())
                n += 1
        os.replace(tmp, final)
    print(f"wrote {args.shards} shards, {total} images ({kind}) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
