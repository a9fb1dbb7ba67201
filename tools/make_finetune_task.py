#!/usr/bin/env python3
"""Assembles a small real fine-tuning task from imagenet-sample-200 (one photo per 5th ImageNet
class): four coarse classes by 1001-class index ranges, each a folder of symlinks to the photos.
Used for the fine-tuning figures in the issue notes; the photos stay where they are (third-party
data, never copied into the repository).

run:  python3 tools/make_finetune_task.py ../shared/testdata/imagenet-sample-200 /tmp/coarse4
"""
import os, sys

# (class folder, first and last 1001-class index): roughly 25-30 photos each.
GROUPS = [("fish_birds_reptiles", 1, 150), ("dogs", 151, 269), ("other_animals", 270, 398),
          ("objects", 399, 550)]


def main():
    src, out = sys.argv[1], sys.argv[2]
    counts = {}
    with open(os.path.join(src, "labels.tsv")) as f:
        for line in f:
            name, index, _ = line.rstrip("\n").split("\t")
            for group, lo, hi in GROUPS:
                if lo <= int(index) <= hi:
                    d = os.path.join(out, group)
                    os.makedirs(d, exist_ok=True)
                    link = os.path.join(d, name)
                    if not os.path.lexists(link):
                        os.symlink(os.path.abspath(os.path.join(src, name)), link)
                    counts[group] = counts.get(group, 0) + 1
    print(counts)


if __name__ == "__main__":
    main()
