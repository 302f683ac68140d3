"""Rewrite a conv-mode ``search.onnx`` into plugin mode: each depthwise correlation becomes one custom node.

Why: TensorRT's ONNX parser takes a Conv whose weight is a graph tensor only since 8.5 (Jetson Nano / TX2 are stuck on
8.2), and where it does, the generic kernel for runtime weights may be slow and cannot be INT8. A custom node
(domain ``siamtrt``, op ``DepthwiseXCorr``, inputs (search feature [N,C,H,W], kernel [N,C,h,w]) → [N,C,H-h+1,W-w+1])
is mapped by the parser to the DepthwiseXCorr plugin (siamtrt/plugin) instead.

What is replaced: for every ``Conv`` whose weight is not a constant, the correlation subgraph around it — the
layout ops (Reshape/Transpose) folding the batch into channels before it and unfolding after it, and the ops that
build the weight from the kernel input (Reshape, or Transpose/Unsqueeze/Mul-with-identity for the dynamic-batch
form of siamtrt.export.models.xcorr). The endpoints are found structurally and then checked by shape: the node is
written only when feature, kernel and output agree on N and C (a DaSiamRPN up-channel correlation does not, and is
refused). ONNX Runtime cannot run the result; keep the conv-mode file for ORT (docs/CONTRACT.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple, Union

from ..errors import ExportError
from ..metadata import decode, set_onnx_metadata
from ..plugin.python_plugin import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

log = logging.getLogger(__name__)

PLUGIN_OP = PLUGIN_NAME  # the parser maps op type → plugin name, these attributes → version and namespace
PLUGIN_DOMAIN = "siamtrt"
PLUGIN_ATTRS = {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}
_LAYOUT_OPS = ("Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze", "Flatten")


def _is_constant(tensor) -> bool:
    import onnx_graphsurgeon as gs

    if isinstance(tensor, gs.Constant):
        return True
    producers = tensor.inputs
    return len(producers) == 1 and producers[0].op == "Constant"


def _walk_back(tensor) -> "object":
    """Follow the data input of consecutive layout ops upwards; return the first tensor not made by one."""
    while len(tensor.inputs) == 1 and tensor.inputs[0].op in _LAYOUT_OPS:
        tensor = tensor.inputs[0].inputs[0]
    return tensor


def _walk_forward(tensor) -> "object":
    """Follow single-consumer layout ops downwards; return the last tensor they produce."""
    while len(tensor.outputs) == 1 and tensor.outputs[0].op in _LAYOUT_OPS:
        node = tensor.outputs[0]
        if node.inputs[0] is not tensor:
            break
        tensor = node.outputs[0]
    return tensor


def _data_ancestors(tensor, limit: int = 10000) -> List["object"]:
    """Tensors whose values flow into ``tensor`` (shape computations — Shape/Size inputs — are not followed)."""
    seen, stack, out = set(), [tensor], []
    while stack and len(seen) < limit:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        out.append(t)
        for node in t.inputs:
            if node.op not in ("Shape", "Size"):
                stack.extend(node.inputs)
    return out


def _kernel_source(graph, weight) -> Optional["object"]:
    """The [N,C,h,w] kernel feeding a correlation weight: the one graph input among its ancestors, else the walk."""
    inputs = {id(t) for t in graph.inputs}
    found = [t for t in _data_ancestors(weight) if id(t) in inputs]
    if len(found) == 1:
        return found[0]
    src = _walk_back(weight)
    return src if src is not weight else None


def _static(shape) -> Optional[Tuple]:
    return tuple(shape) if shape is not None else None


def _check_depthwise(conv, x, k, y) -> Optional[str]:
    """Why (x, k, y) is not a depthwise correlation, or None when the shapes agree."""
    shapes = {"feature": x.shape, "kernel": k.shape, "output": y.shape}
    for name, s in shapes.items():
        if s is not None and len(s) != 4:
            return f"{name} has rank {len(s)} (shape {s}), expected 4"
    xs, ks, ys = (_static(s) for s in (x.shape, k.shape, y.shape))
    if xs and ks and ys:
        def same(a, b):  # batch: symbolic names may differ for the same axis
            return not (isinstance(a, int) and isinstance(b, int)) or a == b

        def same_channels(a, b):  # channels are static in every export: a symbolic one means a wrong endpoint
            return isinstance(a, int) and isinstance(b, int) and a == b
        if not (same_channels(xs[1], ks[1]) and same_channels(xs[1], ys[1])):
            return (f"channels differ: feature {xs}, kernel {ks}, output {ys} (an up-channel correlation such as "
                    "DaSiamRPN's is not depthwise)")
        if not (same(xs[0], ks[0]) and same(xs[0], ys[0])):
            return f"batch differs: feature {xs}, kernel {ks}, output {ys}"
        for ax in (2, 3):
            if all(isinstance(v, int) for v in (xs[ax], ks[ax], ys[ax])) and ys[ax] != xs[ax] - ks[ax] + 1:
                return f"spatial size: output {ys} is not feature {xs} - kernel {ks} + 1 (padding or stride?)"
    for attr, ok in (("strides", lambda v: all(s == 1 for s in v)), ("dilations", lambda v: all(d == 1 for d in v)),
                     ("pads", lambda v: all(p == 0 for p in v))):
        if attr in conv.attrs and not ok(conv.attrs[attr]):
            return f"Conv {conv.name} has {attr}={conv.attrs[attr]}"
    if len(conv.inputs) > 2 and getattr(conv.inputs[2], "name", "") and not _is_zero(conv.inputs[2]):
        return f"Conv {conv.name} has a non-zero bias"
    return None


def _constant_values(tensor):
    import onnx_graphsurgeon as gs

    if isinstance(tensor, gs.Constant):
        return tensor.values
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == "Constant":
        return tensor.inputs[0].attrs.get("value").values
    return None


def _is_zero(tensor) -> bool:
    """A bias that is all zeros: a constant, or Expand / ConstantOfShape of a zero (the dynamo exporter's form)."""
    import numpy as np

    values = _constant_values(tensor)
    if values is not None:
        return not np.any(values)
    if len(tensor.inputs) == 1:
        node = tensor.inputs[0]
        if node.op == "Expand":
            v = _constant_values(node.inputs[0])
            return v is not None and not np.any(v)
        if node.op == "ConstantOfShape":
            v = node.attrs.get("value")
            return v is None or not np.any(v.values)
    return False


def find_correlations(graph) -> List[Tuple["object", "object", "object", "object"]]:
    """(conv node, feature, kernel, output) for each Conv with a non-constant weight in an onnx-graphsurgeon graph.

    Raises:
        ExportError: a runtime-weight Conv whose surroundings are not a depthwise correlation.
    """
    found = []
    for node in graph.nodes:
        if node.op != "Conv" or len(node.inputs) < 2 or _is_constant(node.inputs[1]):
            continue
        x = _walk_back(node.inputs[0])
        k = _kernel_source(graph, node.inputs[1])
        y = _walk_forward(node.outputs[0])
        if k is None:
            raise ExportError(f"cannot find the kernel input of the correlation Conv '{node.name}'",
                              evidence=f"weight tensor {node.inputs[1].name} has no single graph-input ancestor",
                              fix="convert a search.onnx written by export/to_onnx.py (--xcorr conv)")
        why = _check_depthwise(node, x, k, y)
        if why:
            raise ExportError(f"Conv '{node.name}' with a runtime weight is not a depthwise correlation: {why}",
                              evidence=f"feature {x.name}{x.shape}, kernel {k.name}{k.shape}, output {y.name}{y.shape}",
                              fix="plugin mode supports pysot *_dwxcorr models; export DaSiamRPN with --xcorr conv")
        found.append((node, x, k, y))
    return found


def convert_model_to_plugin(model) -> Tuple["object", int]:
    """Return (new ModelProto, number of correlations replaced) for an ``onnx.ModelProto``; metadata is kept."""
    import onnx
    import onnx_graphsurgeon as gs

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # shape inference is a help for the checks, not a requirement
        log.debug("ONNX: shape inference failed (%s); converting without inferred shapes", e)
        inferred = model
    graph = gs.import_onnx(inferred)
    corrs = find_correlations(graph)
    for i, (conv, x, k, y) in enumerate(corrs):
        y.inputs.clear()
        graph.nodes.append(gs.Node(op=PLUGIN_OP, name=f"DepthwiseXCorr_{i}", domain=PLUGIN_DOMAIN,
                                   attrs=dict(PLUGIN_ATTRS), inputs=[x, k], outputs=[y]))
    graph.cleanup().toposort()
    out = gs.export_onnx(graph, do_type_check=False)
    if not any(o.domain == PLUGIN_DOMAIN for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(PLUGIN_DOMAIN, 1))
    out.ir_version = model.ir_version
    del out.metadata_props[:]
    for p in model.metadata_props:
        out.metadata_props.add(key=p.key, value=p.value)
    return out, len(corrs)


def convert_search_to_plugin(src: Path, dst: Path) -> Path:
    """Write ``dst``: the conv-mode search ONNX ``src`` with every depthwise correlation as a DepthwiseXCorr node.

    Sets the siamtrt metadata ``xcorr`` to "plugin" (all other metadata copied). ``dst`` may equal ``src``.

    Args:
        src (Path): a conv-mode ``search.onnx`` (as written by ``export/to_onnx.py``).
        dst (Path): output path.

    Returns:
        Path: ``dst``.

    Raises:
        ExportError: unreadable input, no runtime-weight Conv (already plugin mode, or a template branch), or a
            correlation that is not depthwise (DaSiamRPN's up-channel form).
    """
    import onnx

    src, dst = Path(src), Path(dst)
    try:
        model = onnx.load(str(src))
    except Exception as e:
        raise ExportError(f"cannot read {src} as ONNX", evidence=repr(e)[:300],
                          fix="re-export it with siamtrt export") from None
    meta = decode({p.key: p.value for p in model.metadata_props})
    if meta.get("xcorr") == "plugin" or any(n.domain == PLUGIN_DOMAIN for n in model.graph.node):
        raise ExportError(f"{src} is already in plugin mode",
                          fix="convert the conv-mode search.onnx (siamtrt export --xcorr conv)")
    if meta.get("family") == "dasiamrpn":
        raise ExportError(f"{src} is a DaSiamRPN model, whose up-channel correlation is not depthwise",
                          evidence=f"arch {meta.get('arch')}",
                          fix="build DaSiamRPN engines with --xcorr conv")
    out, n = convert_model_to_plugin(model)
    if n == 0:
        raise ExportError(f"{src} has no Conv with a runtime weight, so there is no correlation to replace",
                          evidence=f"ops: {sorted({nd.op_type for nd in model.graph.node})}",
                          fix="pass the search branch (search.onnx) of a conv-mode export")
    if meta:
        meta["xcorr"] = "plugin"
        set_onnx_metadata(out, meta)
    else:
        log.warning("ONNX: %s carries no siamtrt metadata; writing the plugin model without it", src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(out, str(dst))
    log.info("ONNX: %s -> %s (%d DepthwiseXCorr nodes, domain %s)", src, dst, n, PLUGIN_DOMAIN)
    return dst


def plugin_nodes(model_or_path: Union[str, Path, "object"]) -> List["object"]:
    """The DepthwiseXCorr nodes of a model (path or ModelProto)."""
    import onnx

    model = onnx.load(str(model_or_path), load_external_data=False) if isinstance(model_or_path, (str, Path)) \
        else model_or_path
    return [n for n in model.graph.node if n.domain == PLUGIN_DOMAIN and n.op_type == PLUGIN_OP]


__all__ = ["PLUGIN_OP", "PLUGIN_DOMAIN", "PLUGIN_ATTRS", "convert_search_to_plugin", "convert_model_to_plugin",
           "find_correlations", "plugin_nodes"]
