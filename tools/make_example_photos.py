"""Writes the README quick start's photos, examples/data/{chelsea,coffee}.jpg, from
scikit-image's CC0 sample images (see examples/data/README.md).

    pip download --no-deps scikit-image==0.26.0 -d /tmp/skimg
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pillow   # Pillow 13.0.0 was used
    /tmp/venv/bin/python tools/make_example_photos.py /tmp/skimg/scikit_image-0.26.0-*.whl

The PNGs become JPEGs at quality 90 (34 and 71 KB instead of 240 and 467 KB). (The wheel's
public-domain rocket.jpg was left out: the 0.25_128 model calls it a mosque.)
"""

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "examples" / "data"


def main() -> None:
    wheel = zipfile.ZipFile(sys.argv[1])
    for name in ["chelsea", "coffee"]:
        png = wheel.read(f"skimage/data/{name}.png")
        image = Image.open(io.BytesIO(png)).convert("RGB")
        image.save(OUT / f"{name}.jpg", quality=90, optimize=True)


if __name__ == "__main__":
    main()
