"""torch_layers.py - where PyTorch's eager forward pass goes, convolution by
convolution, for tests/bench/profile_latency.lua: one network read from ONNX by
onnx_to_torch.py, each convolution timed alone on a random input of the shape it sees
in the network (the fastest of 5 rounds), then the whole pass.

    torch_layers.py MODEL.onnx [BATCH]

prints `conv NAME MS` lines (NAME: the ONNX node's name, which is Lopper's), then
`whole MS`.  Two threads, as torch_speed.py.
"""
import os
import sys

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_to_torch  # noqa: E402
import torch_speed  # noqa: E402  (sets 2 threads)

ROUNDS = 5


def fastest_of_rounds(step, reps):
    return min(torch_speed.fastest(step, reps, float("inf")) for _ in range(ROUNDS))


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: torch_layers.py MODEL.onnx [BATCH]\n")
        sys.exit(2)
    path, batch = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1
    net = onnx_to_torch.load(path).eval()
    # the converter makes one nn.Conv2d per Conv node, in the file's order
    names = [n.name for n in onnx.load(path).graph.node if n.op_type == "Conv"]
    convs = [m for m in net.layers if isinstance(m, torch.nn.Conv2d)]
    if len(names) != len(convs):
        sys.exit("torch_layers.py: %d Conv nodes, %d convolutions" % (len(names), len(convs)))
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m, i[0].shape))
             for m in convs]
    x = torch.randn(batch, *net.input_shape)
    reps = 20 if batch == 1 else 3
    with torch.no_grad():
        net(x)
        for h in hooks:
            h.remove()
        for name, m in zip(names, convs):
            xi = torch.randn(shapes[m])
            print("conv %s %.6f" % (name, 1e3 * fastest_of_rounds(lambda: m(xi), reps)))
        print("whole %.6f" % (1e3 * fastest_of_rounds(lambda: net(x), reps)))


if __name__ == "__main__":
    main()
