#!/usr/bin/python3
"""make_fixtures.py DIR - .npy files written by numpy itself for tests/test_npy.c and
tests/lua/npy_spec.lua, with what Lopper must read out of them computed by numpy.

For every case: DIR/<name>.npy (images), DIR/<name>.labels.npy, DIR/<name>.f32 (the
expected images: float32 little-endian, [N, C, H, W], x = (v - mean[c]) / std[c] with
v = uint8 / 255 or the float32 as stored, all in float32 arithmetic as the engine
does it) and DIR/<name>.i32 (the labels, int32 little-endian); and one line per case
in DIR/manifest.txt:
    name n c h w channels_last classes expected_classes mean0 mean1 mean2 std0 std1 std2
(classes 0: not given).  The case "fmnist" holds the first 1000 Fashion-MNIST test
images, [1000, 1, 28, 28] uint8, and their labels, read from the IDX files here.
"""
import gzip
import os
import sys

import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def save(path, arr, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


def expected(images, channels_last, mean, std):
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x = x / np.float32(255)
    if x.ndim == 3:
        x = x[:, None]
    elif channels_last:
        x = x.transpose(0, 3, 1, 2)
    c = x.shape[1]
    sets = [k if c <= 3 else 0 for k in range(c)]
    m = np.array([mean[k] for k in sets], np.float32).reshape(1, c, 1, 1)
    s = np.array([std[k] for k in sets], np.float32).reshape(1, c, 1, 1)
    with np.errstate(over="ignore"):   # -3e38 / 0.3 is -inf, in the engine too
        return np.ascontiguousarray((x - m) / s, dtype="<f4")


def fmnist(count):
    with gzip.open(f"{FMNIST}/t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{FMNIST}/t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images[:count].copy(), labels[:count].copy()


def cases(rng):
    def u8(*shape):
        return rng.integers(0, 256, shape, dtype=np.uint8)

    def f32(*shape):
        x = rng.standard_normal(shape).astype(np.float32) * np.float32(3)
        flat = x.reshape(-1)
        flat[:6] = [0.0, -0.0, 1e-40, -3.0e38, 1.0, np.float32(1) / np.float32(3)]
        return x

    def labels(n, dtype, top):
        y = rng.integers(0, top, n).astype(dtype)
        y[0] = top - 1
        return y

    # name, images, labels, channels_last, classes, mean, std, version
    yield "u8_nchw", u8(5, 3, 4, 6), labels(5, "<i8", 4), False, 0, [0] * 3, [1] * 3, (1, 0)
    yield ("u8_nhwc", u8(5, 4, 6, 3), labels(5, "|u1", 7), True, 10, *IMAGENET, (1, 0))
    yield ("f32_nchw_v2", f32(4, 2, 3, 5), labels(4, "<i4", 3), False, 0, [0.25, -0.5, 0],
           [2, 0.125, 1], (2, 0))
    yield "grey3d", u8(6, 7, 5), labels(6, "<i2", 5), False, 0, [0.5, 0, 0], [0.25, 1, 1], (1, 0)
    yield ("f32_nhwc_be_v3", f32(3, 5, 4, 2).astype(">f4"), labels(3, ">i8", 2), True, 0,
           [0.1, 0.2, 0], [0.3, 0.7, 1], (3, 0))
    yield "u8_c5", u8(3, 5, 2, 3), labels(3, "<u2", 6), False, 0, [0.1] * 3, [0.3] * 3, (1, 0)
    for t in ("|i1", "<u4", "<u8", ">u2"):
        name = "labels_" + t[1:] + ("_be" if t[0] == ">" else "")
        yield name, u8(4, 1, 2, 3), labels(4, t, 3), False, 0, [0] * 3, [1] * 3, (1, 0)
    images, y = fmnist(1000)
    yield "fmnist", images, y, False, 0, [0] * 3, [1] * 3, (1, 0)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(17)
    lines = []
    for name, images, y, last, classes, mean, std, version in cases(rng):
        mean = [float(np.float32(v)) for v in mean]
        std = [float(np.float32(v)) for v in std]
        save(f"{out}/{name}.npy", images, version)
        save(f"{out}/{name}.labels.npy", y, version)
        x = expected(images, last, mean, std)
        x.tofile(f"{out}/{name}.f32")
        y.astype("<i4").tofile(f"{out}/{name}.i32")
        n, c, h, w = x.shape
        want = classes or int(y.max()) + 1
        lines.append(" ".join([name, str(n), str(c), str(h), str(w), str(int(last)),
                               str(classes), str(want)] + [repr(v) for v in mean + std]))
    with open(f"{out}/manifest.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
