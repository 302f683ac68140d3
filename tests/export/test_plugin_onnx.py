"""Plugin-mode ONNX: the DepthwiseXCorr rewrite (siamtrt/export/xcorr_plugin_onnx.py).

The rewrite is checked three ways: structurally (the custom node with the attributes TensorRT's parser needs replaces
every runtime-weight Conv), semantically (in the conv-mode model, the tensors that become the node's inputs and output
satisfy the op's numpy definition, so the node computes what the replaced subgraph computed), and on the realistic
exports (alex: 2 correlations, mobilev2: 6).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch", reason="plugin-mode export needs PyTorch: pip install -e \".[export]\"")
gs = pytest.importorskip("onnx_graphsurgeon", reason="the plugin rewrite needs onnx-graphsurgeon (export extra)")

from siamtrt.errors import ExportError  # noqa: E402
from siamtrt.plugin.kernel import dwxcorr_reference  # noqa: E402
from siamtrt.export.xcorr_plugin_onnx import (PLUGIN_DOMAIN, PLUGIN_OP, convert_model_to_plugin,  # noqa: E402
                                              convert_search_to_plugin, find_correlations, plugin_nodes)
from siamtrt.metadata import read_onnx_metadata  # noqa: E402


class _TinySearch(torch.nn.Module):
    """Feature conv → correlation with a runtime kernel → 1x1 head (the shape of a pysot search branch)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.feat = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU())
        self.head = torch.nn.Conv2d(8 if mode != "upchannel" else 4, 6, 1)

    def forward(self, search, kernel):
        from siamtrt.export.models.xcorr import xcorr_depthwise, xcorr_upchannel

        x = self.feat(search)
        if self.mode == "upchannel":
            y = xcorr_upchannel(x, kernel, 4)
        else:
            y = xcorr_depthwise(x, kernel, dynamic_batch=self.mode == "dynamic")
        return self.head(y)


def _export_tiny(tmp_path, mode: str, batch: int = 2):
    torch.manual_seed(0)
    model = _TinySearch(mode).eval()
    kc = 4 * 8 if mode == "upchannel" else 8
    args = (torch.randn(batch, 3, 33, 33), torch.randn(batch, kc, 4, 4))
    path = tmp_path / f"tiny_{mode}.onnx"
    if mode == "dynamic":  # the dynamic-batch form needs the dynamo exporter (as siamtrt's export uses)
        from torch.export import Dim

        b = Dim("batch", min=1, max=16)
        torch.onnx.export(model, args, str(path), input_names=["search", "kernel"], output_names=["cls"],
                          dynamic_shapes={"search": {0: b}, "kernel": {0: b}}, dynamo=True, opset_version=18,
                          verbose=False)
    else:
        torch.onnx.export(model, args, str(path), input_names=["search", "kernel"], output_names=["cls"],
                          dynamo=False, opset_version=17)
    return path, [a.numpy() for a in args], model


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_rewrite_replaces_every_runtime_weight_conv(tmp_path, mode):
    path, _, _ = _export_tiny(tmp_path, mode)
    out, n = convert_model_to_plugin(onnx.load(str(path)))
    assert n == 1
    nodes = plugin_nodes(out)
    assert len(nodes) == 1
    node = nodes[0]
    assert node.domain == PLUGIN_DOMAIN == "siamtrt" and node.op_type == PLUGIN_OP == "DepthwiseXCorr"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"plugin_version": b"1", "plugin_namespace": b""}
    assert node.input[1] == "kernel"  # the kernel input of the graph feeds the node directly
    inits = {i.name for i in out.graph.initializer}
    assert not [n for n in out.graph.node if n.op_type == "Conv" and n.input[1] not in inits]
    assert any(o.domain == "siamtrt" and o.version == 1 for o in out.opset_import)
    assert [i.name for i in out.graph.input] == ["search", "kernel"]
    assert [o.name for o in out.graph.output] == ["cls"]
    onnx.checker.check_model(out)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_replaced_subgraph_computes_the_op_definition(tmp_path, mode):
    """Expose the node's future endpoints in the conv-mode model: ORT's y must equal dwxcorr_reference(x, k)."""
    ort = pytest.importorskip("onnxruntime", reason="runs the plugin-mode graph in ONNX Runtime: pip install -e .")
    path, (search, kernel), _ = _export_tiny(tmp_path, mode)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = gs.import_onnx(model)
    [(conv, x, k, y)] = find_correlations(graph)
    assert k.name == "kernel"
    for t in (x, y):
        t.dtype = np.float32
        graph.outputs.append(t)
    probe = tmp_path / "probe.onnx"
    onnx.save(gs.export_onnx(graph), str(probe))
    sess = ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"])
    xv, yv = sess.run([x.name, y.name], {"search": search, "kernel": kernel})[:2]
    assert xv.shape[:2] == kernel.shape[:2]
    np.testing.assert_allclose(yv, dwxcorr_reference(xv, kernel), rtol=1e-4, atol=1e-4)


def test_upchannel_correlation_is_refused(tmp_path):
    path, _, _ = _export_tiny(tmp_path, "upchannel")
    with pytest.raises(ExportError, match="not a depthwise correlation") as e:
        convert_model_to_plugin(onnx.load(str(path)))
    assert "--xcorr conv" in str(e.value)


def test_branch_without_correlation_is_refused(tmp_path):
    m = torch.nn.Conv2d(3, 4, 3).eval()
    path = tmp_path / "template_like.onnx"
    torch.onnx.export(m, (torch.randn(1, 3, 8, 8),), str(path), input_names=["template"], dynamo=False,
                      opset_version=17)
    with pytest.raises(ExportError, match="no Conv with a runtime weight"):
        convert_search_to_plugin(path, tmp_path / "out.onnx")


def test_realistic_exports_convert_with_metadata(model_dir, tmp_path):
    for name, count in (("siamrpn_alex_dwxcorr", 2), ("siamrpn_mobilev2_l234_dwxcorr", 6)):
        src = model_dir(name) / "search.onnx"
        dst = convert_search_to_plugin(src, tmp_path / f"{name}-search.onnx")
        nodes = plugin_nodes(dst)
        assert len(nodes) == count, name
        before, after = read_onnx_metadata(src), read_onnx_metadata(dst)
        assert before["xcorr"] == "conv" and after["xcorr"] == "plugin"
        assert {k: v for k, v in after.items() if k != "xcorr"} == {k: v for k, v in before.items() if k != "xcorr"}
        # the node's kernel inputs are the template outputs the runtime feeds
        assert sorted(n.input[1] for n in nodes) == sorted(after["template_outputs"])
        with pytest.raises(ExportError, match="already in plugin mode"):
            convert_search_to_plugin(dst, tmp_path / "again.onnx")
