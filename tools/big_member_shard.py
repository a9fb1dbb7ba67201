#!/usr/bin/env python3
"""Writes a tar shard of N members of SIZE_MB each: a real JPEG (examples/data/chelsea.jpg)
followed by zero padding up to the size (JPEG decoders stop at the end-of-image marker), for
measuring the memory that large tar members take in flight (issue "Hardening II", item 5):

    tools/big_member_shard.py /tmp/big.tar 8 500
    /usr/bin/time -v mnv1 embed /tmp/big.tar --variant 025_128 --weights W > /dev/null
"""
import io
import sys
import tarfile
from pathlib import Path

out, count, size_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
jpeg = (Path(__file__).resolve().parent.parent / "examples/data/chelsea.jpg").read_bytes()
size = size_mb * 1_000_000


class Padded(io.RawIOBase):
    """The JPEG, then zeros, read in pieces (the member is never held whole)."""

    def __init__(self):
        self.pos = 0

    def readable(self):
        return True

    def readinto(self, buf):
        n = min(len(buf), size - self.pos)
        head = jpeg[self.pos : self.pos + n] if self.pos < len(jpeg) else b""
        buf[: len(head)] = head
        buf[len(head) : n] = bytes(n - len(head))
        self.pos += n
        return n


with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
    for i in range(count):
        info = tarfile.TarInfo(f"{i:04d}.jpg")
        info.size = size
        tar.addfile(info, io.BufferedReader(Padded(), 1 << 20))
print(f"{out}: {count} members of {size} bytes")
