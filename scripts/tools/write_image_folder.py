#!/usr/bin/python3
"""write_image_folder.py - an IDX data set (MNIST, Fashion-MNIST) written out as an
image folder, OUT/<class>/<index>.png (or .jpg), for lop.data.folder: its tests, the
end-to-end example, and anyone who wants a folder to try the reader on.

Class folders are named by the label, zero-padded so that their bytewise order is
the numeric one ("0".."9"), or with --names fashion by Fashion-MNIST's class names
(spaces and slashes as underscores; their sorted order is then not the label order).
Files are named by the item's index in the IDX file, zero-padded to 5 digits or more,
so the folder lists a class's items in file order.  Needs PIL (python3-pil).

    /usr/bin/python3 scripts/tools/write_image_folder.py OUT [--split train|test]
        [--images F --labels F] [--first 0] [--count N] [--format png|jpeg]
        [--quality 95] [--names index|fashion]
"""
import argparse
import gzip
import os
import struct
import sys

from PIL import Image

FMNIST = "/usr/share/datasets/fashion-mnist"
FASHION_NAMES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle_boot"]


def read_idx(path):
    """The array of an IDX file of unsigned bytes: (dims, bytes)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes (magic 0x{magic:08x})")
    ndim = magic & 0xff
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    total = 1
    for d in dims:
        total *= d
    if len(body) != total:
        sys.exit(f"{path}: {len(body)} data bytes, the header says {total}")
    return dims, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder to create (class folders go inside)")
    ap.add_argument("--split", choices=["train", "test"], default="test",
                    help="which Fashion-MNIST split, unless --images and --labels say")
    ap.add_argument("--images", help="IDX images (gzip or plain)")
    ap.add_argument("--labels", help="IDX labels (gzip or plain)")
    ap.add_argument("--first", type=int, default=0, help="first item (0-based)")
    ap.add_argument("--count", type=int, default=0, help="items to write (0: to the end)")
    ap.add_argument("--format", choices=["png", "jpeg"], default="png")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality (1..100)")
    ap.add_argument("--names", choices=["index", "fashion"], default="index",
                    help="class folder names: the label, or Fashion-MNIST's class names")
    a = ap.parse_args()
    prefix = "train" if a.split == "train" else "t10k"
    a.images = a.images or f"{FMNIST}/{prefix}-images-idx3-ubyte.gz"
    a.labels = a.labels or f"{FMNIST}/{prefix}-labels-idx1-ubyte.gz"

    (n, h, w), pixels = read_idx(a.images)
    (nl,), labels = read_idx(a.labels)
    if nl != n:
        sys.exit(f"{a.images} has {n} images, {a.labels} {nl} labels")
    last = n if a.count == 0 else a.first + a.count
    if a.first < 0 or a.count < 0 or last > n:
        sys.exit(f"items {a.first}..{last - 1} asked, the data set has {n}")
    classes = max(labels) + 1
    if a.names == "fashion" and classes > len(FASHION_NAMES):
        sys.exit(f"{classes} classes: more than Fashion-MNIST's names")
    width = max(5, len(str(n - 1)))
    ext = "png" if a.format == "png" else "jpg"
    for i in range(a.first, last):
        label = labels[i]
        name = FASHION_NAMES[label] if a.names == "fashion" else str(label).zfill(
            len(str(classes - 1)))
        folder = os.path.join(a.out, name)
        os.makedirs(folder, exist_ok=True)
        img = Image.frombytes("L", (w, h), pixels[i * h * w:(i + 1) * h * w])
        path = os.path.join(folder, f"{i:0{width}d}.{ext}")
        if a.format == "png":
            img.save(path)
        else:
            img.save(path, quality=a.quality)
    print(f"{last - a.first} images in {a.out}")


if __name__ == "__main__":
    main()
