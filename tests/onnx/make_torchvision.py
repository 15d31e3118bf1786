"""make_torchvision.py OUTDIR - the fixtures of tests/lua/torchvision_spec.lua: real
architectures from Debian's python3-torchvision 0.14, built with seeded random weights
(nothing is downloaded) and exported at 64x64, never committed.

For each of NETS: NAME.onnx exported in eval mode (PyTorch folds each batchnorm that
follows a convolution into it) and NAME_bn.onnx with training=TrainingMode.PRESERVE
(batchnorm kept); NAME.input.f32, the fixed input (batch 2) as raw little-endian
float32 for ONNX Runtime; NAME.ref.lua with that input, PyTorch's output on it and
the counts of make_fixtures.counts (parameters and FLOPs as the engine counts them,
before and after folding, the trainable parameters torchvision publishes, and the
multiply-adds of the convolutions and linear layers).  Batchnorm statistics and
affine terms are randomised as make_fixtures does, so they matter.

Also: resnet18_224.onnx (eval mode, 224x224) and its counts, for torchvision's
published figures; and the networks outside the supported set (REFUSED), exported
in eval mode, with REFUSED.lua listing every node's name and operator so the spec
can check that the refusal names a real node and its operator.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf   # noqa: E402  (exits with a message when torch is missing)

try:
    import onnx
    import torch
    import torchvision.models as tv
except ImportError as e:
    sys.stderr.write("make_torchvision.py: %s: install python3-torch python3-torchvision "
                     "python3-onnx (scripts/tools/install_deps.sh does)\n" % e)
    sys.exit(3)

NETS = {
    "resnet18": tv.resnet18,
    "resnet50": tv.resnet50,
    "mobilenet_v2": tv.mobilenet_v2,
    "densenet121": tv.densenet121,
    "squeezenet1_1": tv.squeezenet1_1,
    "googlenet": lambda: tv.googlenet(aux_logits=False, init_weights=True),
    "regnet_x_400mf": tv.regnet_x_400mf,
    "mnasnet0_5": tv.mnasnet0_5,
}
REFUSED = {"efficientnet_b0": tv.efficientnet_b0, "shufflenet_v2_x0_5": tv.shufflenet_v2_x0_5}
BATCH, SIZE = 2, 64


def build(make):
    torch.manual_seed(1)
    model = make()
    mf.randomize(model)
    return model.eval()


def fixed_input(size, batch=BATCH):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(3))


def write_ref(path, ref):
    with open(path, "w") as f:
        f.write("return " + mf.lua_table(ref) + "\n")


def write_nets(out, only):
    for name, make in NETS.items():
        if only and name not in only:
            continue
        model = build(make)
        x = fixed_input(SIZE)
        with torch.no_grad():
            y = model(x)
        mf.export(model, x, os.path.join(out, name + ".onnx"), torch.onnx.TrainingMode.EVAL,
                  True)
        mf.export(model, x, os.path.join(out, name + "_bn.onnx"),
                  torch.onnx.TrainingMode.PRESERVE, True)
        x.numpy().astype("<f4").tofile(os.path.join(out, name + ".input.f32"))
        ref = {"input": x.tolist(), "output": y.tolist(), "batch": BATCH, "size": SIZE}
        ref.update(mf.counts(model, x))
        write_ref(os.path.join(out, name + ".ref.lua"), ref)


def write_resnet18_224(out):
    """Counts only: the published figures are of the 224x224 network."""
    model = build(NETS["resnet18"])
    x = fixed_input(224, 1)
    mf.export(model, x, os.path.join(out, "resnet18_224.onnx"), torch.onnx.TrainingMode.EVAL,
              True)
    write_ref(os.path.join(out, "resnet18_224.ref.lua"), mf.counts(model, x))


def write_refused(out):
    nodes = {}
    for name, make in REFUSED.items():
        path = os.path.join(out, name + ".onnx")
        # a fixed batch, so the channel shuffle's view() is a Reshape of a constant shape,
        # not shape arithmetic
        mf.export(build(make), fixed_input(SIZE), path, torch.onnx.TrainingMode.EVAL, False)
        nodes[name] = [[n.name, n.op_type] for n in onnx.load(path).graph.node]
    write_ref(os.path.join(out, "REFUSED.lua"), nodes)


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: make_torchvision.py OUTDIR [NET...]\n")
        sys.exit(2)
    out, only = sys.argv[1], set(sys.argv[2:])
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    write_nets(out, only)
    if not only:
        write_resnet18_224(out)
        write_refused(out)


if __name__ == "__main__":
    main()
