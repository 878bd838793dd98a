#!/usr/bin/env python3
"""Writes the two tiny linear models (exact arithmetic, no training) the plugin tests use to check exact pixel values.

They follow the stego model contract (input/output names, NCHW float32 in [0, 1], dynamic
N/H/W, metadata) with trivial arithmetic instead of trained networks:

  hide.onnx:   container = 0.75 * cover + 0.25 * secret
  reveal.onnx: revealed  = 1 - container

Needs the `onnx` Python package: python3 -m pip install onnx; python3 make_linear_models.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor(name):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3, "H", "W"])


def const(name, value):
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def save(graph, role):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"stego.role": role, "stego.contract": "1", "stego.variant": "test-stub"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, f"{role}.onnx"))


save(
    helper.make_graph(
        [
            helper.make_node("Mul", ["cover", "a"], ["ca"]),
            helper.make_node("Mul", ["secret", "b"], ["sb"]),
            helper.make_node("Add", ["ca", "sb"], ["container"]),
        ],
        "hide",
        [tensor("cover"), tensor("secret")],
        [tensor("container")],
        [const("a", 0.75), const("b", 0.25)],
    ),
    "hide",
)
save(
    helper.make_graph(
        [helper.make_node("Sub", ["one", "container"], ["revealed"])],
        "reveal",
        [tensor("container")],
        [tensor("revealed")],
        [const("one", 1.0)],
    ),
    "reveal",
)
