"""bench_torch.py - the PyTorch side of `make bench`: the same two networks as
bench_core.c (vgg-small, resnet-small), batch 64 on 1x28x28, 2 threads, so Lopper's
images/s can be compared with Debian's python3-torch in one run."""
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
BATCH = 64


def conv_bn(cin, cout, k=3, stride=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]


def vgg_small():
    layers, cin = [], 1
    for w in [32, 32, "M", 64, 64, "M", 128, 128, "M"]:
        if w == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += conv_bn(cin, w) + [nn.ReLU()]
            cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout))
        self.short = (nn.Sequential(*conv_bn(cin, cout, 1, stride))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet_small():
    layers, cin = conv_bn(1, 16) + [nn.ReLU()], 16
    for stage in range(3):
        cout = 16 << stage
        for b in range(3):
            layers.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def rate(step, seconds=3.0):
    step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return BATCH * n / (time.perf_counter() - t0)


def main():
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.arange(BATCH) % 10
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for name, net in [("vgg-small", vgg_small()), ("resnet-small", resnet_small())]:
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        net.eval()
        with torch.no_grad():
            fwd = rate(lambda: net(x))
        net.train()

        def train_step():
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        print(f"{name:13s} fwd {fwd:7.0f} img/s   train {rate(train_step):7.0f} img/s")


if __name__ == "__main__":
    main()
