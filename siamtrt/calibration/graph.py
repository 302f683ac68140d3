"""Graph analysis shared by the INT8 Q/DQ quantizer (qdq.py), the TensorRT cache writer (cache.py) and the FP16
converter (fp16.py): node naming, the correlations, the stem, the input prefix, the head seen from the correlations.

Plain ONNX protobuf walking (no ONNX Runtime, no torch); every function takes an ``onnx.ModelProto``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Set, Union

import numpy as np

from ..metadata import SEARCH_INPUT, TEMPLATE_INPUT


def _initializer_like(model) -> Set[str]:
    """Tensors that are constants: initializers, Constant outputs, and DequantizeLinear of those (QDQ weights)."""
    names = {i.name for i in model.graph.initializer}
    names |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names |= {o for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in names for o in n.output}
    return names


def name_nodes(model) -> int:
    """Give every unnamed node a unique name (exclusion lists and reports refer to nodes by name)."""
    seen: Set[str] = set()
    renamed = 0
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
            renamed += 1
        seen.add(node.name)
    return renamed


def correlation_convs(model) -> List[str]:
    """Conv nodes whose weight input is a graph tensor: the depthwise correlations (never quantized)."""
    consts = _initializer_like(model)
    return [n.name for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] not in consts]


def stem_convs(model, inputs: Sequence[str] = (TEMPLATE_INPUT, SEARCH_INPUT)) -> List[str]:
    """Convolutions reading the raw image input (the stem): kept in float.

    The crop enters as 0..255 with a large constant (DC) component; a stem filter's response to it is cancelled by
    the folded BatchNorm bias, so int8 rounding of the stem weights is multiplied by ~128 before that cancellation.
    Measured on the mobilev2 search branch: int8 weights in the stem alone cost 0.15 of cls cosine, every other
    layer together 0.03. It is ~0.3 % of the MACs.
    """
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input and n.input[0] in inputs]


def conv_macs(model) -> Dict[str, float]:
    """Multiply-accumulates of every Conv with constant weights (float or Q/DQ int8), at batch 1 (from ONNX shape
    inference)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # shape inference is best effort; unknown shapes count as 0 MACs
        pass
    shapes = {}
    for v in list(m.graph.value_info) + list(m.graph.output):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    weights = {i.name: list(i.dims) for i in m.graph.initializer}
    for n in m.graph.node:  # Q/DQ models: a convolution's weight is the DequantizeLinear of an int8 initializer
        if n.op_type == "DequantizeLinear" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    out = {}
    for n in m.graph.node:
        if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in weights:
            o = shapes.get(n.output[0]) or []
            w = weights[n.input[1]]
            out[n.name] = float(np.prod(o[1:]) * np.prod(w[1:])) if len(o) == 4 and all(o[1:]) else 0.0
    return out


def mac_share(macs: Dict[str, float], names: Iterable[str]) -> float:
    """Share of all conv MACs (``macs`` from :func:`conv_macs`) that the nodes ``names`` carry."""
    keep = set(names)
    return float(sum(v for k, v in macs.items() if k in keep) / (sum(macs.values()) or 1.0))


def input_prefix_convs(model, budget: float) -> List[str]:
    """The convolutions nearest the image input, in graph (topological) order, up to ``budget`` of all conv MACs.

    Why: a rounding error injected early passes through every later layer. On the mobilev2 search branch
    quantizing *only* the second convolution already cost 0.11 of cls cosine, while every layer after the first 5 %
    of MACs cost < 0.004 each. Early layers run at high resolution with few channels, so they are cheap to keep in
    float (mobilev2: the first 20 convolutions are 4.5 % of the MACs; r50: conv1 + layer1 ≈ 2 %).
    """
    macs = conv_macs(model)
    total = sum(macs.values())
    if total <= 0 or budget <= 0:
        return []
    out, cum = [], 0.0
    for n in model.graph.node:
        if n.name not in macs:
            continue
        if cum + macs[n.name] > budget * total:
            break
        cum += macs[n.name]
        out.append(n.name)
    return out


def tail_nodes(model) -> List[str]:
    """Nodes from the last convolution of each path up to the graph outputs (that convolution included)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out: List[str] = []
    seen: Set[str] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        out.append(node.name)
        if node.op_type != "Conv":
            stack.extend(i for i in node.input if i)
    return out


def downstream_tensors(model, node_names: Iterable[str]) -> Set[str]:
    """Every tensor computed from the outputs of ``node_names`` (the head, seen from the correlations)."""
    consumers: Dict[str, List[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    wanted = set(node_names)
    stack = [o for n in model.graph.node if n.name in wanted for o in n.output]
    seen: Set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for c in consumers.get(t, []):
            stack.extend(c.output)
    return seen


def named_model(path: Union[str, Path]):
    """An ONNX model (weights not loaded) with every node named as the quantizers name them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    name_nodes(model)
    return model


__all__ = ["conv_macs", "correlation_convs", "downstream_tensors", "input_prefix_convs", "mac_share", "name_nodes",
           "named_model", "stem_convs", "tail_nodes"]
