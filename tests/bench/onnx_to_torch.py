"""onnx_to_torch.py - an ONNX file as a trainable torch.nn.Module, so that `make bench`
times PyTorch on exactly the network Lopper reads from the same file (weights,
batchnorm statistics and all).  A small interpreter, not a general converter: it
knows the operators of the benchmarked networks (those Lopper writes and torchvision's
ResNet-18 exported with batchnorm kept) and refuses anything else by name.

    net = onnx_to_torch.load("x.onnx")    # an nn.Module; .input_shape is [C, H, W]

In train mode the module trains like a hand-written one: every weight is an
nn.Parameter, each BatchNormalization an nn.BatchNorm2d whose running statistics
update (ONNX's momentum m is PyTorch's 1 - m), each Dropout an nn.Dropout.

As a command, `onnx_to_torch.py MODEL.onnx IN.f32 OUT.f32` runs the module in eval
mode on a batch of raw little-endian float32 images of the model's input shape and
writes the output the same way (tests/lua/onnx_to_torch_spec.lua checks it against
Lopper's forward pass).
"""
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper

SUPPORTED = ("Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, "
             "ReduceMean (axes 2, 3), Add, Concat, Flatten, Gemm, MatMul, Dropout, Identity, "
             "Constant")


class ConversionError(ValueError):
    pass


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def symmetric_pads(node, a):
    """ONNX pads [top, left, bottom, right] as PyTorch's (pad_h, pad_w)."""
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise ConversionError("node '%s' (%s): auto_pad %s is not supported"
                              % (node.name, node.op_type, a["auto_pad"].decode()))
    if pads[:2] != pads[2:]:
        raise ConversionError("node '%s' (%s): asymmetric pads %s are not supported"
                              % (node.name, node.op_type, pads))
    return tuple(pads[:2])


class Binary(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, a, b):
        return self.fn(a, b)


class AddConstant(nn.Module):
    """x + c with c trainable: the bias of a MatMul + Add linear layer."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(c)

    def forward(self, x):
        return x + self.c


class Concat(nn.Module):
    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        return torch.cat(xs, self.axis)


class Mean(nn.Module):
    def __init__(self, keepdim):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keepdim)


class Interpreter(nn.Module):
    """Runs the converted nodes in the file's (topological) order."""

    def __init__(self, model):
        super().__init__()
        graph = model.graph
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
                       for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ConversionError("need one input and one output (got %d and %d)"
                                  % (len(inputs), len(graph.output)))
        self.input_name, self.output_name = inputs[0].name, graph.output[0].name
        dims = inputs[0].type.tensor_type.shape.dim
        self.input_shape = [d.dim_value for d in dims[1:]]
        self.layers = nn.ModuleList()
        self.steps = []   # (index into self.layers, input names, output name)
        for node in graph.node:
            self.convert(node)

    def const(self, node, name):
        if name not in self.consts:
            raise ConversionError("node '%s' (%s): input '%s' must be a constant"
                                  % (node.name, node.op_type, name))
        return self.consts[name]

    def add(self, module, inputs, output):
        self.steps.append((len(self.layers), list(inputs), output))
        self.layers.append(module)

    def convert(self, node):
        op, a, ins = node.op_type, attrs(node), list(node.input)
        if op == "Constant":
            self.consts[node.output[0]] = torch.from_numpy(
                numpy_helper.to_array(a["value"]).copy())
            return
        if op == "Conv":
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ConversionError("node '%s' (Conv): dilation is not supported" % node.name)
            w = self.const(node, ins[1])
            groups = a.get("group", 1)
            m = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]),
                          tuple(a.get("strides", [1, 1])), symmetric_pads(node, a),
                          groups=groups, bias=len(ins) > 2 and ins[2] != "")
            m.weight.data.copy_(w)
            if m.bias is not None:
                m.bias.data.copy_(self.const(node, ins[2]))
        elif op == "BatchNormalization":
            if len(node.output) != 1:
                raise ConversionError("node '%s' (BatchNormalization): only the inference "
                                      "form (one output) is supported" % node.name)
            scale, bias, mean, var = (self.const(node, n) for n in ins[1:5])
            m = nn.BatchNorm2d(scale.numel(), eps=a.get("epsilon", 1e-5),
                               momentum=1 - a.get("momentum", 0.9))
            m.weight.data.copy_(scale)
            m.bias.data.copy_(bias)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        elif op == "Relu":
            m = nn.ReLU()
        elif op in ("MaxPool", "AveragePool"):
            if len(node.output) != 1:
                raise ConversionError("node '%s' (MaxPool): indices output is not supported"
                                      % node.name)
            k, s = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
            pad, ceil = symmetric_pads(node, a), bool(a.get("ceil_mode", 0))
            m = (nn.MaxPool2d(k, s, pad, ceil_mode=ceil) if op == "MaxPool" else
                 nn.AvgPool2d(k, s, pad, ceil_mode=ceil,
                              count_include_pad=bool(a.get("count_include_pad", 0))))
        elif op == "GlobalAveragePool":
            m = nn.AdaptiveAvgPool2d(1)
        elif op == "ReduceMean":
            if sorted(a.get("axes", [])) != [2, 3] or len(ins) > 1:
                raise ConversionError("node '%s' (ReduceMean): only axes [2, 3] as an "
                                      "attribute are supported" % node.name)
            m = Mean(bool(a.get("keepdims", 1)))
        elif op == "Add":
            const = [n for n in ins if n in self.consts]
            if const:   # a MatMul's bias
                m = AddConstant(self.consts[const[0]].clone())
                ins = [n for n in ins if n not in self.consts]
            else:
                m = Binary(torch.add)
        elif op == "Concat":
            m = Concat(a["axis"])
        elif op == "Flatten":
            m = nn.Flatten(a.get("axis", 1))
        elif op == "Gemm":
            if a.get("transA", 0):
                raise ConversionError("node '%s' (Gemm): transA=1 is not supported" % node.name)
            w = self.const(node, ins[1])
            w = w if a.get("transB", 0) else w.t()
            has_bias = len(ins) > 2 and ins[2] != ""
            m = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
            m.weight.data.copy_(a.get("alpha", 1.0) * w)
            if has_bias:
                m.bias.data.copy_(a.get("beta", 1.0) * self.const(node, ins[2]).expand(w.shape[0]))
        elif op == "MatMul":
            w = self.const(node, ins[1])
            m = nn.Linear(w.shape[0], w.shape[1], bias=False)
            m.weight.data.copy_(w.t())
        elif op == "Dropout":
            ratio = (float(self.const(node, ins[1])) if len(ins) > 1 and ins[1]
                     else a.get("ratio", 0.5))
            m = nn.Dropout(ratio)
        elif op == "Identity":
            m = nn.Identity()
        else:
            raise ConversionError("node '%s' (%s): operator %s is not supported (supported: %s)"
                                  % (node.name, op, op, SUPPORTED))
        self.add(m, ins[:1] if op not in ("Add", "Concat") else ins, node.output[0])

    def forward(self, x):
        env = {self.input_name: x}
        for i, ins, out in self.steps:
            env[out] = self.layers[i](*[env[n] for n in ins])
        return env[self.output_name]


def load(path):
    """The ONNX file at path as an Interpreter module (raises ConversionError)."""
    try:
        return Interpreter(onnx.load(path))
    except ConversionError as e:
        raise ConversionError("%s: %s" % (path, e)) from None


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: onnx_to_torch.py MODEL.onnx IN.f32 OUT.f32\n")
        sys.exit(2)
    try:
        net = load(sys.argv[1]).eval()
    except ConversionError as e:
        sys.stderr.write("onnx_to_torch.py: %s\n" % e)
        sys.exit(1)
    x = torch.from_numpy(np.fromfile(sys.argv[2], dtype="<f4")).reshape(-1, *net.input_shape)
    with torch.no_grad():
        net(x).numpy().astype("<f4").tofile(sys.argv[3])


if __name__ == "__main__":
    main()
