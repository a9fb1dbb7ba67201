#!/usr/bin/env python3
"""Reads the event files of `mnv1 finetune --summaries-dir DIR` with TensorBoard's own reader
(EventAccumulator) and compares every scalar with the model directory's manifest.json:
train/ epoch_loss and epoch_accuracy at steps 1..epochs, validation/ the same plus step 0
(before training). Exits non-zero on any difference beyond float32 rounding.

run:  /tmp/venv-i16/bin/python tools/check_tfevents.py SUMMARIES_DIR MODEL_DIR
"""
import json
import math
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def scalars(run_dir):
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    files = [f for f in os.listdir(run_dir) if f.startswith("events.out.tfevents.")]
    return files, {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def main():
    summaries, model = sys.argv[1], sys.argv[2]
    with open(os.path.join(model, "manifest.json")) as f:
        m = json.load(f)
    expected = {"train": {}, "validation": {}}
    for e in m["history"]:
        expected["train"][e["epoch"]] = e["train"]
        if e["validation"] is not None:
            expected["validation"][e["epoch"]] = e["validation"]
    if m["initial_validation"] is not None:
        expected["validation"][0] = m["initial_validation"]
    problems, compared = [], 0
    for run, want in expected.items():
        files, got = scalars(os.path.join(summaries, run))
        print(f"{run}/: {', '.join(files)}; tags {sorted(got)}")
        for key, tag in (("loss", "epoch_loss"), ("accuracy", "epoch_accuracy")):
            have = got.get(tag, {})
            if sorted(have) != sorted(want):
                problems.append(f"{run}/{tag}: steps {sorted(have)}, manifest has {sorted(want)}")
                continue
            for step, figures in sorted(want.items()):
                compared += 1
                a, b = have[step], figures[key]
                ok = math.isclose(a, b, rel_tol=2 ** -23, abs_tol=1e-7)
                print(f"  {tag:15s} step {step:3d}: tensorboard {a:.7f}  manifest {b:.7f}  {'ok' if ok else 'DIFFERS'}")
                if not ok:
                    problems.append(f"{run}/{tag} step {step}: {a} != {b}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"all {compared} scalars match manifest.json")


if __name__ == "__main__":
    main()
