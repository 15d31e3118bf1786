"""make_fixtures.py OUTDIR - the ONNX fixtures of tests/lua/onnx_spec.lua, built with
PyTorch (Debian python3-torch) as the independent reference, never committed.

For each small network below: NAME.onnx exported in eval mode (PyTorch folds each
batchnorm that follows a convolution into it), NAME_bn.onnx exported with
training=TrainingMode.PRESERVE (batchnorm kept), and NAME.ref.lua, a Lua table with
the fixed input, PyTorch's output on it, and parameter and FLOP counts taken in
PyTorch with forward hooks, counted as the engine counts (a multiply-add is 2 FLOPs;
batchnorm 2 per output value, ReLU and each add 1, a pool one per window tap,
global pooling one per input value; batchnorm's running mean and variance count as
parameters).  "folded" counts are what the eval export holds: no batchnorm that
follows a convolution, whose bias takes its shift.  Also writes plain.onnx as
older exporters lay it out (opset 11, initializers listed as inputs) and with its
weights as float_data, and the files the engine must refuse (an unsupported operator, a non-float weight, a dilated
convolution, excluded padding, a truncated file, garbage bytes).
"""
import json
import os
import sys

try:
    import numpy as np
    import onnx
    import onnx.numpy_helper
    from onnx import TensorProto, helper
    import torch
    import torch.nn as nn
    from torch.overrides import TorchFunctionMode
except ImportError as e:
    sys.stderr.write("make_fixtures.py: %s: install python3-torch python3-torchvision "
                     "python3-onnx (scripts/tools/install_deps.sh does)\n" % e)
    sys.exit(3)


class Add(nn.Module):
    def forward(self, a, b):
        return a + b


class Cat(nn.Module):
    def forward(self, a, b):
        return torch.cat([a, b], 1)


class Cat1(nn.Module):
    """torch.cat of a single tensor: exports as a one-input Concat."""
    def forward(self, a):
        return torch.cat([a], 1)


class SpatialMean(nn.Module):
    """x.mean((2, 3)): exports as ReduceMean without keepdims."""
    def forward(self, x):
        return x.mean((2, 3))


class MatMulAdd(nn.Module):
    """x @ W + b: exports as MatMul + Add, not Gemm."""
    def __init__(self, k, m):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(k, m) / k ** 0.5)
        self.bias = nn.Parameter(torch.randn(m))

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


class Plain(nn.Module):
    """conv+bn+relu+maxpool, twice; flatten; linear."""
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*conv_bn(3, 8), nn.MaxPool2d(2),
                                      *conv_bn(8, 16, stride=2))
        self.classifier = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class Reshaped(nn.Module):
    """x.view(x.size(0), -1) with a dynamic batch (the Shape/Gather/Unsqueeze/Concat
    chain), MatMul + Add, dropout, a biased convolution without batchnorm."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, 1, 1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.drop = nn.Dropout(0.3)
        self.fc1 = MatMulAdd(6 * 8 * 8, 32)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.conv(x)))
        x = x.view(x.size(0), -1)
        return self.fc2(self.relu2(self.drop(self.fc1(x))))


class Residual(nn.Module):
    """A basic block with an identity shortcut, one with a strided 1x1 projection,
    global average pooling, linear."""
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 8))
        self.a1 = nn.Sequential(*conv_bn(8, 8), nn.Conv2d(8, 8, 3, 1, 1, bias=False),
                                nn.BatchNorm2d(8))
        self.add1, self.relu1 = Add(), nn.ReLU()
        self.b1 = nn.Sequential(*conv_bn(8, 16, stride=2), nn.Conv2d(16, 16, 3, 1, 1, bias=False),
                                nn.BatchNorm2d(16))
        self.short = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.add2, self.relu2 = Add(), nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu1(self.add1(self.a1(x), x))
        x = self.relu2(self.add2(self.b1(x), self.short(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Concat(nn.Module):
    """Two branches concatenated, batchnorm after the concat (not foldable), average
    pooling, flatten, linear."""
    def __init__(self):
        super().__init__()
        self.left = nn.Conv2d(3, 6, 1)
        self.right = nn.Conv2d(3, 10, 3, 1, 1)
        self.cat = Cat()
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.relu(self.bn(self.cat(self.left(x), self.right(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Grouped(nn.Module):
    """Grouped and depthwise convolutions, average pooling with padding (counted, as
    PyTorch's default count_include_pad=True), mean over the spatial axes."""
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*conv_bn(3, 16), *conv_bn(16, 32, groups=4),
                                      *conv_bn(32, 32, stride=2, groups=32),
                                      nn.AvgPool2d(3, 1, 1))
        self.mean = SpatialMean()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.mean(self.features(x)))


class Mobile(nn.Module):
    """ReLU6 after a depthwise convolution (MobileNetV2), ceil-mode max and average
    pooling (GoogLeNet, SqueezeNet), average pooling that leaves its padding out and
    one that counts it beside it, zero padding on one side only before a convolution
    and before a max pool (pad layers), a one-input concat (DenseNet's first)."""
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU6(),
                                  nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU6(),
                                  nn.MaxPool2d(3, 2, ceil_mode=True),      # 16 -> 8
                                  nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(8, 12, 3),  # -> 7
                                  nn.ReLU())
        self.exclude = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.include = nn.AvgPool2d(3, 2, 1, ceil_mode=True)              # 7 -> 4
        self.add = Add()
        self.tail = nn.Sequential(nn.ZeroPad2d((1, 0, 1, 0)), nn.MaxPool2d(2, 2, ceil_mode=True),
                                  Cat1(), nn.AvgPool2d(2, 2, ceil_mode=True))  # 5 -> 3 -> 2
        self.fc = nn.Linear(12 * 2 * 2, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.tail(self.add(self.exclude(x), self.include(x)))
        return self.fc(torch.flatten(x, 1))


class Padded(nn.Module):
    """Zero padding on one side before a convolution, before a ReLU (a pad layer each),
    and as the very last operation."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(4, 4, 3))
        self.relu = nn.Sequential(nn.ZeroPad2d((2, 0, 1, 0)), nn.ReLU())
        self.last = nn.ZeroPad2d(1)

    def forward(self, x):
        return self.last(self.relu(self.conv2(self.conv1(x))))


# The ZeroPad2d paddings of each net, in order (see plain_pads).
ZERO_PADS = {"mobile": [(0, 1, 0, 1), (1, 0, 1, 0)],
             "padded": [(0, 1, 0, 1), (2, 0, 1, 0), (1, 1, 1, 1)]}
NETS = {"plain": Plain, "reshaped": Reshaped, "residual": Residual, "concat": Concat,
        "grouped": Grouped, "mobile": Mobile, "padded": Padded}
BATCH, SHAPE = 2, (3, 16, 16)


def randomize(model):
    """Batchnorm statistics and affine terms away from 1 and 0, so they matter."""
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=g)
            m.bias.data = torch.randn(c, generator=g) * 0.2
            m.running_mean = torch.randn(c, generator=g) * 0.3
            m.running_var = 0.5 + torch.rand(c, generator=g)


class _Functional(TorchFunctionMode):
    """What a network computes as functions rather than modules (torchvision writes
    `out += identity`, `F.relu(x)`, `torch.cat`, `x.mean([2, 3])`): calls made outside
    every counted module are handed to on_call."""
    def __init__(self, on_call):
        super().__init__()
        self.on_call = on_call

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.on_call(getattr(func, "__name__", ""), args, kwargs or {}, out)
        return out


def counts(model, x):
    """(params, flops) as the engine counts them, the same after PyTorch's eval
    export folds each batchnorm that reads a convolution's output into it, the
    trainable parameters alone (what torchvision publishes) and the multiply-adds of
    the convolutions and linear layers.  Modules are counted by forward hooks; what
    runs as a function outside them (an add of two activations, a functional ReLU,
    adaptive pooling to 1x1, a mean over H and W) through _Functional.  A module or
    a function that computes something the counts do not know is an error."""
    flops, bn_flops, macs, conv_out, hooks = [0], [0], [0], {}, []
    fold_params, inside = [0], [0]
    free = (nn.Dropout, nn.Flatten, nn.ZeroPad2d, Cat, Cat1)   # no FLOPs
    counted = (nn.Conv2d, nn.Linear, MatMulAdd, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, Add,
               nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, SpatialMean) + free

    def per_sample(t):
        return t.numel() // t.shape[0]

    def pre_hook(m, inp):
        inside[0] += 1

    def hook(m, inp, out):
        inside[0] -= 1
        n_out = per_sample(out)
        if isinstance(m, nn.Conv2d):
            # kept alive, so its id cannot pass to a later tensor
            conv_out[id(out)] = (m, out)
            cin = m.in_channels // m.groups
            mac = m.out_channels * cin * m.kernel_size[0] * m.kernel_size[1] * \
                out.shape[2] * out.shape[3]
            macs[0] += mac
            flops[0] += 2 * mac
        elif isinstance(m, (nn.Linear, MatMulAdd)):
            mac = m.in_features * m.out_features if isinstance(m, nn.Linear) else m.weight.numel()
            macs[0] += mac
            flops[0] += 2 * mac
        elif isinstance(m, nn.BatchNorm2d):
            flops[0] += 2 * n_out
            conv = conv_out.get(id(inp[0]))
            if conv is not None:   # folded: BN's 4C values go, the conv gains a bias
                bn_flops[0] += 2 * n_out
                fold_params[0] += 4 * m.num_features - (m.num_features if conv[0].bias is None
                                                        else 0)
        elif isinstance(m, (nn.ReLU, nn.ReLU6, Add)):
            flops[0] += n_out
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            flops[0] += k * k * n_out
        elif isinstance(m, (nn.AdaptiveAvgPool2d, SpatialMean)):
            if n_out != out.shape[1]:
                raise ValueError("%s: adaptive pooling to more than 1x1 is not counted" % m)
            flops[0] += per_sample(inp[0])

    def functional(name, args, kwargs, out):
        if inside[0]:
            return
        if name in ("add", "add_", "__add__", "__iadd__", "__radd__"):
            if not (len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args) and
                    args[0].shape == args[1].shape):
                raise ValueError("an add that is not of two activations is not counted")
            flops[0] += per_sample(out)
        elif name in ("relu", "relu_"):
            flops[0] += per_sample(out)
        elif name == "adaptive_avg_pool2d" or (name == "mean" and per_sample(out) ==
                                                out.shape[1] and args[0].dim() == 4):
            flops[0] += per_sample(args[0])
        elif name in ("cat", "flatten", "dropout", "view", "reshape", "size", "dim",
                      "__get__", "__len__"):
            pass
        elif isinstance(out, torch.Tensor) and out.dim() > 0:
            raise ValueError("function %s outside the counted modules is not counted" % name)

    for m in model.modules():
        if isinstance(m, counted):
            hooks.append(m.register_forward_pre_hook(pre_hook))
            hooks.append(m.register_forward_hook(hook))
        elif not list(m.children()):
            raise ValueError("module %s is not counted" % type(m).__name__)
    try:
        with torch.no_grad(), _Functional(functional):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    trainable = sum(p.numel() for p in model.parameters())
    params = trainable + sum(b.numel() for name, b in model.named_buffers()
                             if name.endswith("running_mean") or name.endswith("running_var"))
    return {"params": params, "flops": flops[0],
            "params_folded": params - fold_params[0], "flops_folded": flops[0] - bn_flops[0],
            "trainable": trainable, "macs": macs[0]}


def lua_table(obj):
    """A JSON-shaped value as a Lua constructor ([] -> {}, "k": -> k =)."""
    if isinstance(obj, dict):
        return "{" + ", ".join("%s = %s" % (k, lua_table(v)) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "{" + ", ".join(lua_table(v) for v in obj) + "}"
    return json.dumps(obj)


def export(model, x, path, training, dynamic):
    kw = {"dynamic_axes": {"input": {0: "N"}, "output": {0: "N"}}} if dynamic else {}
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      opset_version=13, training=training,
                      do_constant_folding=training == torch.onnx.TrainingMode.EVAL, **kw)


def write_nets(out):
    for name, cls in NETS.items():
        torch.manual_seed(1)
        model = cls()
        randomize(model)
        model.eval()
        x = torch.randn(BATCH, *SHAPE, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            y = model(x)
        dynamic = name == "reshaped"
        export(model, x, os.path.join(out, name + ".onnx"), torch.onnx.TrainingMode.EVAL,
               dynamic)
        export(model, x, os.path.join(out, name + "_bn.onnx"),
               torch.onnx.TrainingMode.PRESERVE, dynamic)
        for suffix in (".onnx", "_bn.onnx"):
            plain_pads(os.path.join(out, name + suffix), ZERO_PADS.get(name, []))
        ref = {"input": x.tolist(), "output": y.tolist()}
        ref.update(counts(model, x))
        with open(os.path.join(out, name + ".ref.lua"), "w") as f:
            f.write("return " + lua_table(ref) + "\n")


def tensor(name, array, dtype=TensorProto.FLOAT):
    return helper.make_tensor(name, dtype, array.shape, array.flatten().tolist())


def conv_model(path, op_after=None, weight_type=TensorProto.FLOAT, **conv_attrs):
    """input [1, 3, 8, 8] -> Conv (weight of the given type) [-> op_after]."""
    w = np.ones((4, 3, 3, 3), dtype=np.float32)
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv_out"], name="the_conv",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1], **conv_attrs)]
    last = "conv_out"
    if op_after:
        nodes.append(helper.make_node(op_after, ["conv_out"], ["after"], name="the_" +
                                      op_after.lower()))
        last = "after"
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)],
        [tensor("w", w.astype(np.int64) if weight_type == TensorProto.INT64 else w, weight_type)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def write_variants(out):
    """plain.onnx as older exporters and other writers lay it out: opset 11 with the
    initializers listed as graph inputs too; weights as float_data, not raw_data;
    padded.onnx with a Conv's asymmetric padding in its pads attribute, not a Pad."""
    torch.manual_seed(1)
    model = Plain()
    randomize(model)
    model.eval()
    torch.onnx.export(model, torch.zeros(BATCH, *SHAPE), os.path.join(out, "plain_old.onnx"),
                      input_names=["input"], output_names=["output"], opset_version=11,
                      keep_initializers_as_inputs=True)
    m = onnx.load(os.path.join(out, "plain.onnx"))
    for i, t in enumerate(m.graph.initializer):
        a = onnx.numpy_helper.to_array(t)
        m.graph.initializer[i].CopyFrom(tensor(t.name, a))
    onnx.save(m, os.path.join(out, "plain_float_data.onnx"))
    pads_into_conv(os.path.join(out, "padded.onnx"), os.path.join(out, "conv_pads.onnx"))


def plain_pads(path, pads):
    """Give each Pad of the file that PyTorch's F.pad wrote (its pads computed by a
    ConstantOfShape / Slice / Transpose / Cast chain, which the reader does not fold)
    a constant pads input instead - pads[i] = (left, right, top, bottom) as ZeroPad2d
    takes them, for the i-th such Pad - and drop the chains."""
    m = onnx.load(path)
    producer = {o: nd for nd in m.graph.node for o in nd.output}
    chained = [nd for nd in m.graph.node if nd.op_type == "Pad" and
               producer.get(nd.input[1]) is not None and producer[nd.input[1]].op_type == "Cast"]
    assert len(chained) == len(pads), (path, len(chained))
    for nd, (l, r, t, b) in zip(chained, pads):
        name = nd.output[0] + "_pads"
        m.graph.initializer.append(tensor(name, np.array([0, 0, t, l, 0, 0, b, r]),
                                          TensorProto.INT64))
        nd.input[1] = name
    used = True
    while used:   # drop nodes nothing reads any more
        needed = {i for nd in m.graph.node for i in nd.input} | {o.name for o in m.graph.output}
        dead = [nd for nd in m.graph.node if not any(o in needed for o in nd.output)]
        for nd in dead:
            m.graph.node.remove(nd)
        used = bool(dead)
    onnx.save(m, path)


def pads_into_conv(src, dst):
    """src with its first Pad that feeds a Conv removed and its padding moved into the
    Conv's own (asymmetric) pads attribute: the same function, written another way."""
    m = onnx.load(src)
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    for nd in m.graph.node:
        if nd.op_type == "Constant":
            consts[nd.output[0]] = onnx.numpy_helper.to_array(nd.attribute[0].t)
    pad = next(nd for nd in m.graph.node if nd.op_type == "Pad" and
               any(c.op_type == "Conv" and c.input[0] == nd.output[0] for c in m.graph.node))
    conv = next(c for c in m.graph.node if c.op_type == "Conv" and c.input[0] == pad.output[0])
    p = consts[pad.input[1]]
    conv.input[0] = pad.input[0]
    del conv.attribute[[a.name for a in conv.attribute].index("pads")]
    conv.attribute.append(helper.make_attribute("pads", [int(p[2]), int(p[3]), int(p[6]),
                                                         int(p[7])]))
    m.graph.node.remove(pad)
    onnx.save(m, dst)


def write_refusals(out):
    conv_model(os.path.join(out, "sigmoid.onnx"), op_after="Sigmoid")
    conv_model(os.path.join(out, "int_weight.onnx"), weight_type=TensorProto.INT64)
    conv_model(os.path.join(out, "dilated.onnx"), dilations=[2, 2])
    conv_model(os.path.join(out, "clip_other.onnx"), op_after="Clip")
    with open(os.path.join(out, "plain.onnx"), "rb") as f:
        data = f.read()
    with open(os.path.join(out, "truncated.onnx"), "wb") as f:
        f.write(data[:len(data) // 2])
    rng = np.random.default_rng(5)
    with open(os.path.join(out, "garbage.onnx"), "wb") as f:
        f.write(b"\x0a\xff" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    write_nets(out)
    write_variants(out)
    write_refusals(out)


if __name__ == "__main__":
    main()
