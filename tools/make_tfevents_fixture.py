#!/usr/bin/env python3
"""Writes tests/fixtures/tfevents/tensorboard_writer.tfevents with TensorBoard's own event-file
writer (tensorboard.summary.writer.event_file_writer.EventFileWriter, the one behind
torch.utils.tensorboard and tensorboardX): its file-version event, then three epochs of
`epoch_loss` / `epoch_accuracy` as simple_value scalars with fixed wall times. The Rust test
tfevents_fixture (tests/it/report.rs) decodes it with mnv1's reader (checksums verified) and
re-encodes the scalar events with mnv1's writer, expecting the same bytes.

run:  python3 -m venv /tmp/venv-i16 && /tmp/venv-i16/bin/pip install tensorboard
      /tmp/venv-i16/bin/python tools/make_tfevents_fixture.py
"""
import glob
import os
import shutil
import tempfile

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tfevents",
                   "tensorboard_writer.tfevents")
# (step, tag, value): exactly representable in float32, so the test can compare with ==.
SCALARS = [(1, "epoch_loss", 1.25), (1, "epoch_accuracy", 0.5),
           (2, "epoch_loss", 0.75), (2, "epoch_accuracy", 0.625),
           (3, "epoch_loss", 0.5), (3, "epoch_accuracy", 0.875)]


def main():
    tmp = tempfile.mkdtemp()
    w = EventFileWriter(tmp)
    for step, tag, value in SCALARS:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        w.add_event(event_pb2.Event(wall_time=1_700_000_000.0 + step, step=step, summary=summary))
    w.close()
    (path,) = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    shutil.copyfile(path, OUT)
    shutil.rmtree(tmp)
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
