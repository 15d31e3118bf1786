#!/usr/bin/python3
"""train_fashion_cnn.py - the "user's own model" of the end-to-end example
(scripts/examples/prune_onnx_fashion.sh): a small CNN trained with Debian's PyTorch on
Fashion-MNIST for a few minutes, then exported to ONNX as any PyTorch user would.
Nothing of Lopper is used here; the weights are made on the spot, never committed.

    /usr/bin/python3 scripts/examples/train_fashion_cnn.py --out build/example/cnn.onnx

Inputs are 1x28x28 images scaled to 0..1 and normalised with Fashion-MNIST's pixel
statistics (mean 0.2860, std 0.3530), as torchvision's ToTensor + Normalize give.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn

MEAN, STD = 0.2860, 0.3530
DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (gzip) as a numpy array: images [N, 28, 28] or labels [N]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(DATA, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, prefix + "-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(x.astype(np.float32) / 255.0) - MEAN) / STD
    return x.unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def make_net():
    return nn.Sequential(*block(1, 16), *block(16, 32), nn.MaxPool2d(2),
                         *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def accuracy(net, x, y, batch=1000):
    net.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            hits += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    xtr, ytr = load("train")
    xte, yte = load("test")
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    steps = a.epochs * ((len(xtr) + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    start = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), a.batch):
            idx = perm[i:i + a.batch]
            xb = xtr[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb[flip] = xb[flip].flip(3)
            opt.zero_grad()
            loss = loss_fn(net(xb), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
        print("epoch %d/%d: loss %.4f, test top-1 %.2f%% (%.0f s)"
              % (epoch + 1, a.epochs, loss.item(), 100 * accuracy(net, xte, yte),
                 time.time() - start), flush=True)
    net.eval()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), tmp, opset_version=13,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(tmp, a.out)
    print("PyTorch test top-1 %.2f%%; wrote %s" % (100 * accuracy(net, xte, yte), a.out))


if __name__ == "__main__":
    main()
