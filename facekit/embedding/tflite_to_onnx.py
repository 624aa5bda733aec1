"""TFLite → ONNX for float32 convolutional recognizers (MobileFaceNet), without TensorFlow.

Reads the flatbuffer with the `tflite` package (generated schema code, pure Python) and writes an ONNX
graph with `onnx.helper`: NHWC becomes NCHW, the batch becomes dynamic, and TF's PReLU pattern
`relu(x) + c * (x - |x|)` becomes one ONNX `PRelu(x, 2c)`. Only the operators such models use are
handled; any other is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facekit.errors import ModelLoadError

_SAME, _VALID = 0, 1
_FLOAT32, _INT32 = 0, 2


@dataclass
class _Graph:
    """The TFLite subgraph in plain Python: tensors (name, shape, constant data) and operators."""

    names: list[str]
    shapes: list[list[int]]
    constants: dict[int, np.ndarray]
    ops: list[tuple[str, list[int], list[int], object]]  # (operator, inputs, outputs, options table)
    inputs: list[int]
    outputs: list[int]
    producer: dict[int, int] = field(default_factory=dict)
    consumers: dict[int, list[int]] = field(default_factory=dict)


def _read(buffer: bytes) -> _Graph:
    try:
        import tflite
    except ImportError as exc:
        raise ModelLoadError(
            "converting a .tflite file needs the tflite package: pip install 'facekit[convert]'"
        ) from exc
    model = tflite.Model.GetRootAsModel(buffer, 0)
    if model.SubgraphsLength() != 1:
        raise ModelLoadError(f"expected one TFLite subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    names, shapes, constants = [], [], {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        names.append(t.Name().decode())
        shape = [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []
        shapes.append(shape)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            if t.Type() not in (_FLOAT32, _INT32):
                raise ModelLoadError(f"tensor {names[-1]} has TFLite type {t.Type()}: only float32 models convert")
            dtype = np.float32 if t.Type() == _FLOAT32 else np.int32
            constants[i] = data.view(dtype).reshape(shape)
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ops.append((name, [int(j) for j in op.InputsAsNumpy()], [int(j) for j in op.OutputsAsNumpy()], op))
    graph = _Graph(
        names, shapes, constants, ops, [int(j) for j in g.InputsAsNumpy()], [int(j) for j in g.OutputsAsNumpy()]
    )
    for k, (_, ins, outs, _) in enumerate(ops):
        for t in outs:
            graph.producer[t] = k
        for t in ins:
            graph.consumers.setdefault(t, []).append(k)
    return graph


def _options(op, kind: str):
    import tflite

    table = op.BuiltinOptions()
    opts = getattr(tflite, kind)()
    opts.Init(table.Bytes, table.Pos)
    if opts.FusedActivationFunction() != 0:
        raise ModelLoadError(f"fused activation {opts.FusedActivationFunction()} is not supported")
    return opts


def _prelu_pattern(g: _Graph, k: int) -> tuple[int, np.ndarray, set[int]] | None:
    """For ADD op k of the form relu(x) + c * (x - abs(x)): (x, slope 2c, the ops it replaces)."""
    name, ins, _, _ = g.ops[k]
    if name != "ADD":
        return None
    parents = [g.producer.get(t) for t in ins]
    if any(p is None for p in parents):
        return None
    by_kind = {g.ops[p][0]: p for p in parents}
    if set(by_kind) != {"RELU", "MUL"}:
        return None
    relu, mul = by_kind["RELU"], by_kind["MUL"]
    x = g.ops[relu][1][0]
    const = [t for t in g.ops[mul][1] if t in g.constants]
    other = [t for t in g.ops[mul][1] if t not in g.constants]
    if len(const) != 1 or len(other) != 1 or g.producer.get(other[0]) is None:
        return None
    sub = g.producer[other[0]]
    if g.ops[sub][0] != "SUB" or g.ops[sub][1][0] != x:
        return None
    abs_op = g.producer.get(g.ops[sub][1][1])
    if abs_op is None or g.ops[abs_op][0] != "ABS" or g.ops[abs_op][1][0] != x:
        return None
    return x, 2.0 * g.constants[const[0]], {relu, mul, sub, abs_op}


def convert(buffer: bytes, *, metadata: dict[str, str] | None = None):  # -> onnx.ModelProto
    """An ONNX model (opset 13, NCHW input, dynamic batch) computing what the TFLite model computes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = _read(buffer)
    nodes, inits = [], []
    fused: dict[int, tuple[int, np.ndarray]] = {}
    skip: set[int] = set()
    for k in range(len(g.ops)):
        found = _prelu_pattern(g, k)
        if found:
            fused[k] = (found[0], found[1])
            skip |= found[2]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def operand(t: int, rank4: bool) -> str:
        """A tensor's ONNX name; constants become initializers, per-channel ones shaped (C, 1, 1) for NCHW."""
        if t not in g.constants:
            return g.names[t]
        value = g.constants[t].astype(np.float32)
        if rank4 and value.ndim == 1:
            value = value.reshape(-1, 1, 1)
        return const(g.names[t] + "/nchw", value)

    for k, (name, ins, outs, op) in enumerate(g.ops):
        if k in skip:
            continue
        out = g.names[outs[0]]
        if k in fused:
            x, slope = fused[k]
            nodes.append(helper.make_node("PRelu", [g.names[x], const(out + "/slope", slope.reshape(-1, 1, 1))], [out]))
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = g.constants[ins[1]]
            if name == "CONV_2D":
                opts, weight, group = _options(op, "Conv2DOptions"), w.transpose(0, 3, 1, 2), 1
            else:
                opts = _options(op, "DepthwiseConv2DOptions")
                if opts.DepthMultiplier() != 1:
                    raise ModelLoadError(
                        "depthwise convolutions with a depth multiplier other than 1 are not supported"
                    )
                weight, group = w[0].transpose(2, 0, 1)[:, None], w.shape[3]
            if opts.DilationWFactor() != 1 or opts.DilationHFactor() != 1:
                raise ModelLoadError("dilated convolutions are not supported")
            inputs = [g.names[ins[0]], const(g.names[ins[1]] + "/oihw", weight)]
            if len(ins) > 2 and ins[2] >= 0:
                inputs.append(const(g.names[ins[2]], g.constants[ins[2]]))
            nodes.append(
                helper.make_node(
                    "Conv",
                    inputs,
                    [out],
                    kernel_shape=list(weight.shape[2:]),
                    strides=[opts.StrideH(), opts.StrideW()],
                    auto_pad="SAME_UPPER" if opts.Padding() == _SAME else "VALID",
                    group=group,
                )
            )
        elif name in ("RELU", "ABS"):
            nodes.append(helper.make_node(name.capitalize(), [g.names[ins[0]]], [out]))
        elif name in ("ADD", "SUB", "MUL"):
            _options(op, name.capitalize() + "Options")
            rank4 = any(len(g.shapes[t]) == 4 for t in ins)
            nodes.append(helper.make_node(name.capitalize(), [operand(t, rank4) for t in ins], [out]))
        elif name == "RESHAPE":
            shape = g.shapes[ins[0]]
            if len(shape) != 4 or shape[1:3] != [1, 1]:
                raise ModelLoadError(f"RESHAPE of a {shape} tensor is not supported (only N x 1 x 1 x C → N x C)")
            nodes.append(helper.make_node("Flatten", [g.names[ins[0]]], [out], axis=1))
        else:
            raise ModelLoadError(f"TFLite operator {name} is not supported by facekit's converter")
    (inp,), (outp,) = g.inputs, g.outputs
    _, h, w, c = g.shapes[inp]
    graph = helper.make_graph(
        nodes,
        "converted",
        [helper.make_tensor_value_info(g.names[inp], TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info(g.names[outp], TensorProto.FLOAT, ["N", g.shapes[outp][-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="facekit")
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model
