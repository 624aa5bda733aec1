"""A TF.js graph model to ONNX, without TensorFlow: the few ops of the MobileNet-style face embedders that
bench/third_models.py scores (Conv2D, depthwise convolution, BiasAdd and Relu fused into a MatMul, PReLU and ReLU6 as
Maximum/Minimum, Pad, Reshape, Mean). TF.js is NHWC; the ONNX file takes NCHW, as facekit's ONNX recognizers do.

Checked against TF.js itself (@tensorflow/tfjs-core 4 on its CPU backend, on seeded inputs): max |difference| 1.6e-5
for mobileface (outputs up to 19) and 3.8e-6 for faceres-deep (up to 1.8).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16}
ELEMENTWISE = {"Sub": "Sub", "Mul": "Mul", "Add": "Add", "AddV2": "Add", "Maximum": "Max", "Minimum": "Min"}


def read_weights(model_json: Path) -> dict[str, np.ndarray]:
    """The weights of a TF.js graph model (its weightsManifest's shards, float16 quantization undone)."""
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    weights = {}
    for group in manifest:
        data = b"".join((model_json.parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            stored = DTYPES[spec["quantization"]["dtype"]] if spec.get("quantization") else DTYPES[spec["dtype"]]
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            values = np.frombuffer(data, dtype=stored, count=count, offset=offset).reshape(spec["shape"])
            weights[spec["name"]] = values.astype(DTYPES[spec["dtype"]])
            offset += count * np.dtype(stored).itemsize
    return weights


def _text(attr: dict) -> str:
    return base64.b64decode(attr["s"]).decode()


def convert(model_json: Path, output: str, dim: int):  # -> onnx.ModelProto
    """The ONNX model computing `output` (a node's name) of the TF.js graph model `model_json`, as `embedding`
    [N, dim], from an NCHW float input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = json.loads(model_json.read_text())["modelTopology"]["node"]
    weights = read_weights(model_json)
    nodes, initializers, rank = [], [], {}
    inputs = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def per_channel(value: np.ndarray, of_rank: int) -> np.ndarray:  # NHWC's last axis is NCHW's second
        value = np.asarray(value, np.float32)
        return value.reshape(-1, 1, 1) if of_rank == 4 and value.ndim == 1 and value.size > 1 else value

    for node in graph:
        op, name, attr = node["op"], node["name"], node.get("attr", {})
        if op == "Const":
            continue
        if op == "Placeholder":
            _, height, width, channels = (int(d["size"]) for d in attr["shape"]["shape"]["dim"])
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, height, width]))
            rank[name] = 4
            continue
        args, of_rank = [], None
        for source in node.get("input", []):
            source = source.split(":")[0]
            if source in weights:
                args.append((True, weights[source], source))
            else:
                args.append((False, source, source))
                of_rank = rank[source]
        if op in ("Conv2D", "DepthwiseConv2dNative"):
            kernel = args[1][1]
            if op == "DepthwiseConv2dNative":
                height, width, channels, multiplier = kernel.shape
                kernel, group = kernel.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, height, width), channels
            else:
                kernel, group = kernel.transpose(3, 2, 0, 1), 1
            options = {"strides": [int(s) for s in attr["strides"]["list"]["i"]][1:3], "group": group}
            if _text(attr["padding"]) == "SAME":  # TF pads the odd pixel at the end, as SAME_UPPER does
                options["auto_pad"] = "SAME_UPPER"
            nodes.append(helper.make_node("Conv", [args[0][1], const(f"{name}/k", kernel)], [name], **options))
            rank[name] = 4
        elif op in ELEMENTWISE:
            operands = [
                const(f"{name}/{source}", per_channel(value, of_rank)) if is_weight else value
                for is_weight, value, source in args
            ]
            nodes.append(helper.make_node(ELEMENTWISE[op], operands, [name]))
            rank[name] = of_rank
        elif op in ("Relu", "Sigmoid", "Softmax"):
            nodes.append(helper.make_node(op, [args[0][1]], [name]))
            rank[name] = of_rank
        elif op == "Pad":
            pads = args[1][1][[0, 3, 1, 2]]  # NHWC's (before, after) pairs in NCHW order
            nodes.append(
                helper.make_node(
                    "Pad", [args[0][1], const(f"{name}/p", np.r_[pads[:, 0], pads[:, 1]].astype(np.int64))], [name]
                )
            )
            rank[name] = 4
        elif op == "Reshape":  # a flatten: in TF.js's NHWC order
            nodes.append(helper.make_node("Transpose", [args[0][1]], [f"{name}/nhwc"], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Flatten", [f"{name}/nhwc"], [name], axis=1))
            rank[name] = 2
        elif op == "Mean":
            if sorted(int(a) for a in np.ravel(args[1][1])) != [1, 2]:
                raise ValueError(f"{name}: only a mean over height and width is supported")
            nodes.append(helper.make_node("ReduceMean", [args[0][1]], [name], axes=[2, 3], keepdims=0))
            rank[name] = 2
        elif op in ("MatMul", "_FusedMatMul"):
            product = name if op == "MatMul" else f"{name}/matmul"
            nodes.append(helper.make_node("MatMul", [args[0][1], const(f"{name}/w", args[1][1])], [product]))
            if op == "_FusedMatMul":
                fused = [_text({"s": s}) for s in attr["fused_ops"]["list"]["s"]]
                biased = f"{name}/bias" if "Relu" in fused else name
                nodes.append(helper.make_node("Add", [product, const(f"{name}/b", args[2][1])], [biased]))
                if "Relu" in fused:
                    nodes.append(helper.make_node("Relu", [biased], [name]))
            rank[name] = 2
        else:
            raise ValueError(f"{model_json.name}: op {op} ({name}) is not supported")
    nodes.append(helper.make_node("Identity", [output], ["embedding"]))
    result = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])
    model = helper.make_model(
        helper.make_graph(nodes, model_json.stem, inputs, [result], initializers),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
