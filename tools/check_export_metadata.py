#!/usr/bin/env python3
"""Compares the metadata of an mnv1 .tflite export with what tflite-support's own image
classifier writer (the one TFLite Model Maker uses) writes for the same kind of model.

Reads the export with tflite-support's MetadataDisplayer (its JSON and the packed files), runs
`metadata_writers.image_classifier.MetadataWriter.create_for_inference` (mean 127.5, std 127.5,
the same labels) on a reference .tflite without metadata, and prints every metadata field where
the two differ, and the zip members' compression of both. Expected differences: only the
free-text fields mnv1 fills in (name, description, author, licence, version, subgraph name).

Not run by CI. tflite-support pins protobuf 3.20, which breaks TensorFlow, so it gets a venv of
its own:

  python3 -m venv /tmp/venv-tfls && /tmp/venv-tfls/bin/pip install tflite-support
  /tmp/venv-tfls/bin/python tools/check_export_metadata.py EXPORT.tflite \\
      ../shared/testdata/weights/mobilenet_v1_0.25_128.tflite LABELS.txt
"""

import io
import json
import sys
import zipfile

from tflite_support import metadata as md
from tflite_support.metadata_writers import image_classifier, writer_utils


def flat(x, path=""):
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in flat(val, f"{path}/{key}").items()}
    if isinstance(x, list):
        return {k: v for i, val in enumerate(x) for k, v in flat(val, f"{path}[{i}]").items()}
    return {path: x}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    export, reference, labels = sys.argv[1:]
    ours = md.MetadataDisplayer.with_model_file(export)
    writer = image_classifier.MetadataWriter.create_for_inference(
        writer_utils.load_file(reference), [127.5], [127.5], [labels])
    theirs = md.MetadataDisplayer.with_model_buffer(writer.populate())
    a = flat(json.loads(theirs.get_metadata_json()))
    b = flat(json.loads(ours.get_metadata_json()))
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print(f"{k}: writer {a.get(k)!r} | mnv1 {b.get(k)!r}"[:200])
    print("packed files: writer", theirs.get_packed_associated_file_list(),
          "| mnv1", ours.get_packed_associated_file_list())
    ours_labels = ours.get_associated_file_buffer("labels.txt").decode()
    print("labels.txt equal:", ours_labels == open(labels).read())
    with open(export, "rb") as f:
        members = zipfile.ZipFile(io.BytesIO(f.read())).infolist()
    print("mnv1 zip members stored uncompressed:",
          all(m.compress_type == zipfile.ZIP_STORED for m in members))


if __name__ == "__main__":
    main()
