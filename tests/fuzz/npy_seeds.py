"""npy_seeds.py OUTDIR - seeds for tests/fuzz/fuzz_npy.c, written by numpy itself:
small image and label arrays in every accepted dtype and layout, format versions 1.0,
2.0 and 3.0, each pair as the harness reads it (flags byte, labels length, labels,
images), once as whole files and once as the harness's short form (version byte,
header line, data) that keeps mutated headers consistent.  Generated at build time,
never committed.
"""
import io
import os
import struct
import sys

import numpy as np

rng = np.random.default_rng(3)


def npy(arr, version):
    f = io.BytesIO()
    np.lib.format.write_array(f, arr, version=version)
    return f.getvalue()


def short(whole):
    """The harness's short form of a .npy file: version byte, header line, data."""
    pre = 10 if whole[6] == 1 else 12
    return bytes([whole[6] - 1]) + whole[pre:]


def seed(flags, labels, images):
    return bytes([flags]) + struct.pack("<H", len(labels)) + labels + images


def cases():
    u8 = lambda *s: rng.integers(0, 256, s, dtype=np.uint8)
    f4 = lambda *s: rng.standard_normal(s).astype(np.float32)
    lab = lambda n, t: rng.integers(0, 10, n).astype(t)
    # flags: 1 channels_last, 2 classes = 10, 4 mean and std
    yield 0, lab(2, "<i8"), u8(2, 3, 4, 4), (1, 0)
    yield 1, lab(3, "|u1"), u8(3, 4, 4, 3), (1, 0)
    yield 2, lab(2, "<i4"), f4(2, 2, 3, 3), (2, 0)
    yield 4, lab(4, "<i2"), u8(4, 5, 3), (1, 0)
    yield 5, lab(2, ">i8"), f4(2, 3, 2, 2).astype(">f4"), (3, 0)
    yield 6, lab(1, "<u8"), u8(1, 5, 2, 2), (1, 0)
    yield 0, lab(3, "|i1"), f4(3, 1, 2, 5), (1, 0)
    yield 3, lab(2, "<u4"), u8(2, 2, 2, 1), (2, 0)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, (flags, y, x, version) in enumerate(cases()):
        ly, lx = npy(y, version), npy(x, version)
        with open(f"{out}/npy_{i}.bin", "wb") as f:
            f.write(seed(flags, ly, lx))
        with open(f"{out}/npy_{i}_short.bin", "wb") as f:
            f.write(seed(flags, short(ly), short(lx)))


if __name__ == "__main__":
    main()
