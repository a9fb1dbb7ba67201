#!/usr/bin/env python3
"""Derive labels/imagenet_labels.txt (the 1001 TF-Slim MobileNet V1 labels).

Source: the npm package @tensorflow-models/mobilenet, version 2.1.1,
file package/dist/imagenet_classes.js (the 1000 ImageNet class names, index 0..999,
as a JS object literal `exports.IMAGENET_CLASSES = { 0: '...', ... }`).

TensorFlow's label list (ImageNetLabels.txt, used by the TF-Slim / TF-Hub
MobileNet V1 models) is: line 0 = `background`, then for each of the 1000
classes the FIRST comma-separated name of its description.  Exceptions are
listed in OVERRIDES below (1001-class index -> label).

How to run (python3, standard library only):

    cd "$(mktemp -d)"
    npm pack @tensorflow-models/mobilenet@2.1.1
    tar xzf tensorflow-models-mobilenet-2.1.1.tgz
    python3 /path/to/mnv1/tools/make_labels.py \
        package/dist/imagenet_classes.js > /path/to/mnv1/labels/imagenet_labels.txt

(The argument may also be the .tgz itself; it is read with tarfile.)
"""
import re
import sys
import tarfile

MEMBER = "package/dist/imagenet_classes.js"

# 1001-class index -> label, where TensorFlow's list differs from
# "first comma-separated name".
OVERRIDES = {
    # ImageNet class 107: the npm package spells it 'jelly fish';
    # TensorFlow's ImageNetLabels.txt (line 108, 0-based) has 'jellyfish'.
    108: "jellyfish",
}

# A JS single-quoted string literal, with backslash escapes.
STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")
# One entry: `N: 'part' + 'part' ...,` up to the next entry or the closing brace.
ENTRY = re.compile(r"(\d+)\s*:\s*((?:'(?:[^'\\]|\\.)*'\s*\+?\s*)+)")


def unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


def read_source(path):
    if path.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path) as tf:
            return tf.extractfile(MEMBER).read().decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse_classes(js):
    body = js[js.index("exports.IMAGENET_CLASSES = {"):]
    body = body[: body.index("};")]
    classes = {}
    for m in ENTRY.finditer(body):
        idx = int(m.group(1))
        text = "".join(unescape(p) for p in STRING.findall(m.group(2)))
        if idx in classes:
            raise SystemExit(f"duplicate class index {idx}")
        classes[idx] = text
    if sorted(classes) != list(range(1000)):
        raise SystemExit(f"expected class indices 0..999, got {len(classes)} entries")
    return [classes[i] for i in range(1000)]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    classes = parse_classes(read_source(sys.argv[1]))
    labels = ["background"] + [c.split(",")[0].strip() for c in classes]
    for idx, name in OVERRIDES.items():
        labels[idx] = name
    assert len(labels) == 1001
    sys.stdout.write("".join(l + "\n" for l in labels))


if __name__ == "__main__":
    main()
