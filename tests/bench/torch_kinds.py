"""torch_kinds.py - where PyTorch's training step goes, by layer kind, for
tests/bench/profile_kinds.lua: one network read from ONNX by onnx_to_torch.py, STEPS
training steps at batch 64 (the step of torch_speed.py) under torch's profiler, and
for each kind the self time of its forward and backward operators per step.

    torch_kinds.py MODEL.onnx [STEPS]

prints `kind KIND FWD_MS BWD_MS` lines, then `step MS` (the profiled step, which the
profiler slows a little).  Two threads, as torch_speed.py.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_to_torch  # noqa: E402
import torch_speed  # noqa: E402  (sets 2 threads)

BATCH = torch_speed.BATCH
# profiler operator -> (engine kind, pass)
OPS = {
    "aten::mkldnn_convolution": ("conv2d", 0),
    "aten::thnn_conv2d": ("conv2d", 0),
    "aten::_slow_conv2d_forward": ("conv2d", 0),
    "aten::convolution_backward": ("conv2d", 1),
    "aten::native_batch_norm": ("batchnorm", 0),
    "aten::native_batch_norm_backward": ("batchnorm", 1),
    "aten::clamp_min": ("relu", 0),
    "aten::relu": ("relu", 0),
    "aten::threshold_backward": ("relu", 1),
    "aten::max_pool2d_with_indices": ("maxpool", 0),
    "aten::max_pool2d_with_indices_backward": ("maxpool", 1),
    "aten::add": ("add", 0),
    "aten::addmm": ("linear", 0),
    "aten::mm": ("linear", 1),
    "aten::mean": ("global_avgpool", 0),
    "aten::adaptive_avg_pool2d": ("global_avgpool", 0),
}


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: torch_kinds.py MODEL.onnx [STEPS]\n")
        sys.exit(2)
    steps = int(sys.argv[2]) if len(sys.argv) == 3 else 5
    net = onnx_to_torch.load(sys.argv[1])
    x = torch.randn(BATCH, *net.input_shape, generator=torch.Generator().manual_seed(7))
    step = torch_speed.training_step(net, x)
    for _ in range(2):
        step()
    with torch.profiler.profile() as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        took = (time.perf_counter() - t0) / steps
    ms = {}
    for e in prof.key_averages():
        if e.key in OPS:
            kind, which = OPS[e.key]
            ms.setdefault(kind, [0.0, 0.0])[which] += e.self_cpu_time_total / 1e3 / steps
    for kind, (f, b) in sorted(ms.items()):
        print("kind %s %.6g %.6g" % (kind, f, b))
    print("step %.6g" % (1e3 * took))


if __name__ == "__main__":
    main()
