"""torch_speed.py - the PyTorch side of `make bench` (tests/bench/bench_speed.lua): one
network read from ONNX by onnx_to_torch.py, timed the way the engine's net:time times
it, so the two columns of the table measure the same thing.

    torch_speed.py MODEL.onnx FWD_REPS TRAIN_REPS LAT_REPS [SECONDS]

prints one line `speed FWD_IMG_S TRAIN_IMG_S LAT_MS DEPLOY_MS CONV` (CONV: the convolution
kernel PyTorch ran, `onednn` when it is aten::mkldnn_convolution), and with --info
first a line on the PyTorch build.  Each figure is the fastest of its reps after one
untimed pass (as lop_graph_time and lop_graph_time_train do), stopping early once
its timed passes have taken SECONDS (default no limit; bench_speed.lua sizes the
engine's reps to the same budget): forward in eval mode at batch 64 without
autograd; a training step at batch 64 - forward in train mode,
cross-entropy against labels 0, 1, 2, ..., backward, SGD with momentum 0.9, Nesterov,
weight decay 5e-4; batch-1 latency in eval mode, and again in PyTorch's deployment
form (traced, torch.jit.freeze, torch.jit.optimize_for_inference: weights prepacked
for oneDNN, batchnorm folded), the counterpart of the engine's net:freeze().  Torch's
import and the conversion happen before any timing.  Two threads, as the engine uses
one per core on the 2-core machine the table is made on.
"""
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_to_torch  # noqa: E402

BATCH = 64
torch.set_num_threads(2)


def fastest(step, reps, budget):
    step()
    best, spent = float("inf"), 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        took = time.perf_counter() - t0
        best, spent = min(best, took), spent + took
        if spent >= budget:
            break
    return best


def training_step(net, x):
    """One training step of net (put in train mode) on batch x, as a function: forward,
    cross-entropy against labels 0, 1, 2, ..., backward, SGD with momentum 0.9,
    Nesterov, weight decay 5e-4 - the step of the engine's net:time{train = true}."""
    net.train()
    y = torch.arange(x.shape[0]) % net(x).shape[1]
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def conv_kernel(net, x):
    """Which convolution implementation one eval forward pass runs."""
    with torch.no_grad(), torch.profiler.profile() as prof:
        net(x)
    names = {e.name for e in prof.events() if "conv" in e.name}
    if "aten::mkldnn_convolution" in names:
        return "onednn"
    low = sorted(n for n in names if n not in ("aten::conv2d", "aten::convolution",
                                               "aten::_convolution"))
    return "+".join(low) or "none"


def main():
    args = [a for a in sys.argv[1:] if a != "--info"]
    if len(args) not in (4, 5):
        sys.stderr.write("usage: torch_speed.py [--info] MODEL.onnx FWD_REPS TRAIN_REPS "
                         "LAT_REPS [SECONDS]\n")
        sys.exit(2)
    if "--info" in sys.argv:
        print("torch %s, %d threads, oneDNN (mkldnn) available: %s, enabled: %s"
              % (torch.__version__, torch.get_num_threads(),
                 torch.backends.mkldnn.is_available(), torch.backends.mkldnn.enabled))
    fwd_reps, train_reps, lat_reps = (int(a) for a in args[1:4])
    budget = float(args[4]) if len(args) == 5 else float("inf")
    net = onnx_to_torch.load(args[0])
    x = torch.randn(BATCH, *net.input_shape, generator=torch.Generator().manual_seed(7))
    x1 = x[:1].clone()
    net.eval()
    with torch.no_grad():
        fwd = fastest(lambda: net(x), fwd_reps, budget)
        lat = fastest(lambda: net(x1), lat_reps, budget)
        deployed = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x1)))
        deploy = fastest(lambda: deployed(x1), lat_reps, budget)
    train = fastest(training_step(net, x), train_reps, budget)
    # last: after the profiler has run, this process's passes run several times slower
    kernel = conv_kernel(net.eval(), x)
    print("speed %.6g %.6g %.6g %.6g %s" % (BATCH / fwd, BATCH / train, 1e3 * lat,
                                           1e3 * deploy, kernel))


if __name__ == "__main__":
    main()
