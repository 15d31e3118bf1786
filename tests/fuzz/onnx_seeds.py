"""onnx_seeds.py OUTDIR - ONNX seeds for tests/fuzz/fuzz_onnx.c in the shapes other
exporters write and Lopper's own writer never does (tests/fuzz/seeds.lua makes
those): a flatten spelled Shape -> Gather -> Unsqueeze -> Concat -> Reshape, MatMul +
Add, Pad before Conv and AveragePool (as an input and, in opset 7, as an attribute),
Constant and Identity, ReduceMean with keepdims, Gemm without transB and with a
one-value bias, Gather of channels, weights as float_data and int32 indices as
raw_data, initializers listed as graph inputs.  Tiny nets: the fuzzer should mutate
structure.  Needs python3-onnx and numpy only (no PyTorch); generated at build time,
never committed.
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1)


def weight(name, *shape, raw=True):
    a = (rng.standard_normal(shape) * 0.5).astype(np.float32)
    if raw:
        return numpy_helper.from_array(a, name)
    return helper.make_tensor(name, TensorProto.FLOAT, shape, a.flatten().tolist())


def ints(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def save(out, name, nodes, inits, in_shape, out_shape, opset=13, inits_as_inputs=False):
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)]
    if inits_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                   for t in inits]
    graph = helper.make_graph(nodes, name, inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                             out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset >= 12 else 6
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


def reshaped(out, opset):
    """Conv -> Relu -> MaxPool -> the exporters' flatten -> Gemm."""
    axes13 = opset >= 13
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2], pads=[0, 0, 0, 0], auto_pad="NOTSET"),
        helper.make_node("Shape", ["p1"], ["s"], name="shape"),
        helper.make_node("Constant", [], ["zero"], name="zero_c",
                         value=helper.make_tensor("zero", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
        (helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq") if axes13 else
         helper.make_node("Unsqueeze", ["n"], ["n1"], name="unsq", axes=[0])),
        helper.make_node("Concat", ["n1", "minus1"], ["shape2"], name="cat_shape", axis=0),
        helper.make_node("Reshape", ["p1", "shape2"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "w2", "b2"], ["output"], name="fc", transB=1),
    ]
    inits = [weight("w1", 3, 2, 3, 3), weight("b1", 3), ints("minus1", [-1]),
             weight("w2", 2, 12), weight("b2", 2)]
    if axes13:
        inits.append(ints("axes0", [0]))
    save(out, "reshaped_opset%d" % opset, nodes, inits, ["N", 2, 4, 4], ["N", 2], opset,
         inits_as_inputs=opset < 13)


def matmul(out):
    """A vector input: MatMul + Add, Identity, Dropout with a ratio input, Relu."""
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "b"], ["fc"], name="fc_bias"),
        helper.make_node("Identity", ["fc"], ["id"], name="same"),
        helper.make_node("Dropout", ["id", "ratio"], ["drop"], name="drop"),
        helper.make_node("Relu", ["drop"], ["output"], name="relu"),
    ]
    inits = [weight("w", 5, 3, raw=False), weight("b", 3), weight("ratio")]
    inits[-1] = numpy_helper.from_array(np.array(0.25, dtype=np.float32), "ratio")
    save(out, "matmul", nodes, inits, [1, 5], [1, 3])


def padded(out, opset):
    """Pad (an input since opset 11, an attribute before) before Conv and AveragePool,
    batchnorm, Add, ReduceMean keepdims, Flatten, Gemm without transB."""
    if opset >= 11:
        pad = lambda x, y, n: helper.make_node("Pad", [x, "pads", "zero_f"], [y], name=n,
                                               mode="constant")
    else:
        pad = lambda x, y, n: helper.make_node("Pad", [x], [y], name=n, mode="constant",
                                               pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.0)
    nodes = [
        pad("input", "px", "pad1"),
        helper.make_node("Conv", ["px", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         group=1, dilations=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn"],
                         name="bn1", epsilon=1e-5, momentum=0.9),
        pad("bn", "pb", "pad2"),
        helper.make_node("AveragePool", ["pb"], ["ap"], name="avg", kernel_shape=[3, 3],
                         count_include_pad=1),
        helper.make_node("Add", ["ap", "c1"], ["sum"], name="sum"),
        helper.make_node("ReduceMean", ["sum"], ["rm"], name="mean", axes=[2, 3],
                         keepdims=1),
        helper.make_node("Flatten", ["rm"], ["fl"], name="flatten", axis=1),
        helper.make_node("Gemm", ["fl", "w2", "c"], ["output"], name="fc", alpha=0.5,
                         beta=2.0),
    ]
    inits = [weight("w1", 2, 1, 3, 3), weight("g", 2), weight("beta", 2), weight("mean", 2),
             numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "var"),
             weight("w2", 2, 3), weight("c", 1)]
    if opset >= 11:
        inits += [ints("pads", [0, 0, 1, 1, 0, 0, 1, 1]),
                  numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero_f")]
    save(out, "padded_opset%d" % opset, nodes, inits, [1, 1, 5, 5], [1, 3], opset)


def gathered(out):
    """Gather of channels (int32 indices, raw), Concat on axis -3, Conv group and a
    Constant weight, GlobalAveragePool, Flatten."""
    w2 = weight("w2c", 4, 1, 1, 1)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1",
                         kernel_shape=[1, 1]),
        helper.make_node("Gather", ["c1", "idx"], ["g"], name="pick", axis=1),
        helper.make_node("Concat", ["g", "c1"], ["cat"], name="cat", axis=-3),
        helper.make_node("Constant", [], ["w2c"], name="w2_const", value=w2),
        helper.make_node("Conv", ["cat", "w2c"], ["c2"], name="dw", kernel_shape=[1, 1],
                         group=4),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["output"], name="flatten"),
    ]
    inits = [weight("w1", 2, 2, 1, 1), weight("b1", 2), ints("idx", [1, 0], np.int32)]
    save(out, "gathered", nodes, inits, [1, 2, 3, 3], [1, 4])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    reshaped(out, 13)
    reshaped(out, 9)
    matmul(out)
    padded(out, 13)
    padded(out, 7)
    gathered(out)


if __name__ == "__main__":
    main()
