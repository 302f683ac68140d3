"""Tiny hand-made model directories that honour docs/CONTRACT.md, written with onnx.helper (no torch).

Template branch: scale pixels → AveragePool down to the kernel size → 1x1 convs → the kernels named in the metadata.
Search branch: scale → AveragePool with stride 8 → 1x1 convs → depthwise correlation with each kernel (written as
kh·kw Slice·Mul terms, so batch and spatial size stay dynamic) → 1x1 heads → ``cls`` [N,2A,S,S], ``loc`` [N,4A,S,S].
Several levels (like pysot's multi-level r50) are summed. Fast enough to track all of bag.avi in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from siamtrt.config import CONFIGS, ModelConfig
from siamtrt.metadata import build_metadata, set_onnx_metadata

OPSET = 17


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, np.float32), name)


def kernel_names(levels: int) -> List[str]:
    if levels == 1:
        return ["cls_kernel", "loc_kernel"]
    return [f"{t}_kernel_{lv}" for lv in range(2, 2 + levels) for t in ("cls", "loc")]


def make_tiny_model_dir(out_dir, config: str = "siamrpn_alex_dwxcorr", channels: int = 6, levels: int = 1,
                        seed: int = 0, batch: str = "dynamic", xcorr: str = "conv",
                        cfg: Optional[ModelConfig] = None, meta_overrides: Optional[dict] = None) -> Path:
    """Write template.onnx + search.onnx with siamtrt metadata into ``out_dir``; returns the directory."""
    cfg = CONFIGS[config] if cfg is None else cfg
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t, a = cfg.track, cfg.anchor
    A = a.anchor_num
    e = t.exemplar_size
    kh = 5 if t.base_size == 8 else 4
    # template pool: (E - k)/s + 1 = kh
    tk, ts = (31, 32) if kh == 4 else (31, 24)
    assert (e - tk) // ts + 1 == kh
    # search pool (stride 8): H = S + kh - 1, (I - k)/8 + 1 = H  →  k = I - 8(H - 1)
    s0 = t.score_size(a.stride)
    sk = t.instance_size - a.stride * (s0 + kh - 2)
    names = kernel_names(levels)
    dyn = batch == "dynamic"
    bdim = "batch" if dyn else 1
    C = channels

    # ---------------------------------------------------------------------------------------------- template
    nodes, inits = [], []
    inits += [_init("inv255", 1 / 255.0), _init("half", 0.5)]
    nodes += [helper.make_node("Mul", ["template", "inv255"], ["t_s"]),
              helper.make_node("Sub", ["t_s", "half"], ["t_c"]),
              helper.make_node("AveragePool", ["t_c"], ["t_p"], kernel_shape=[tk, tk], strides=[ts, ts])]
    outs = []
    for n in names:
        w = rng.normal(0, 1.0, (C, 3, 1, 1))
        inits.append(_init(f"w_{n}", w))
        nodes.append(helper.make_node("Conv", ["t_p", f"w_{n}"], [n]))
        outs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, [bdim, C, kh, kh]))
    g = helper.make_graph(nodes, "tiny_template",
                          [helper.make_tensor_value_info("template", TensorProto.FLOAT, [bdim, 3, e, e])], outs, inits)
    tm = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="siamtrt-tests")
    tm.ir_version = 9

    # ------------------------------------------------------------------------------------------------ search
    nodes, inits = [], []
    inits += [_init("inv255", 1 / 255.0), _init("half", 0.5)]
    nodes += [helper.make_node("Mul", ["search", "inv255"], ["x_s"]),
              helper.make_node("Sub", ["x_s", "half"], ["x_c"]),
              helper.make_node("AveragePool", ["x_c"], ["x_p"], kernel_shape=[sk, sk], strides=[a.stride, a.stride])]
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes23")
    inits.append(axes)
    big = np.iinfo(np.int64).max
    for u in range(kh):
        for v in range(kh):
            inits.append(numpy_helper.from_array(np.array([u, v], np.int64), f"st_{u}_{v}"))
            end_u = -(kh - 1 - u) if u < kh - 1 else big
            end_v = -(kh - 1 - v) if v < kh - 1 else big
            inits.append(numpy_helper.from_array(np.array([end_u, end_v], np.int64), f"en_{u}_{v}"))
            inits.append(numpy_helper.from_array(np.array([u + 1, v + 1], np.int64), f"k1_{u}_{v}"))
    head_sums = {"cls": [], "loc": []}
    for n in names:
        kind = n.split("_")[0]
        w = rng.normal(0, 1.0, (C, 3, 1, 1))
        inits.append(_init(f"ws_{n}", w))
        nodes.append(helper.make_node("Conv", ["x_p", f"ws_{n}"], [f"f_{n}"]))
        terms = []
        for u in range(kh):
            for v in range(kh):
                nodes.append(helper.make_node("Slice", [f"f_{n}", f"st_{u}_{v}", f"en_{u}_{v}", "axes23"],
                                              [f"fs_{n}_{u}_{v}"]))
                nodes.append(helper.make_node("Slice", [n, f"st_{u}_{v}", f"k1_{u}_{v}", "axes23"],
                                              [f"ks_{n}_{u}_{v}"]))
                nodes.append(helper.make_node("Mul", [f"fs_{n}_{u}_{v}", f"ks_{n}_{u}_{v}"], [f"m_{n}_{u}_{v}"]))
                terms.append(f"m_{n}_{u}_{v}")
        nodes.append(helper.make_node("Sum", terms, [f"corr_{n}"]))
        co = 2 * A if kind == "cls" else 4 * A
        std = 0.6 / np.sqrt(C * kh * kh) if kind == "cls" else 0.15 / np.sqrt(C * kh * kh)
        inits.append(_init(f"wh_{n}", rng.normal(0, std, (co, C, 1, 1))))
        inits.append(_init(f"bh_{n}", rng.normal(0, 0.1 if kind == "cls" else 0.02, (co,))))
        nodes.append(helper.make_node("Conv", [f"corr_{n}", f"wh_{n}", f"bh_{n}"], [f"h_{n}"]))
        head_sums[kind].append(f"h_{n}")
    for kind in ("cls", "loc"):
        if len(head_sums[kind]) == 1:
            nodes.append(helper.make_node("Identity", head_sums[kind], [kind]))
        else:
            nodes.append(helper.make_node("Sum", head_sums[kind], [kind]))
    several = len(t.instance_sizes) > 1  # adaptive (SiamRPNBIG) or long-term lost size: dynamic spatial axes
    sdim = "size" if several else t.instance_size
    odim = "score" if several else s0
    ins = [helper.make_tensor_value_info("search", TensorProto.FLOAT, [bdim, 3, sdim, sdim])]
    ins += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [bdim, C, kh, kh]) for n in names]
    outs = [helper.make_tensor_value_info("cls", TensorProto.FLOAT, [bdim, 2 * A, odim, odim]),
            helper.make_tensor_value_info("loc", TensorProto.FLOAT, [bdim, 4 * A, odim, odim])]
    g = helper.make_graph(nodes, "tiny_search", ins, outs, inits)
    sm = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="siamtrt-tests")
    sm.ir_version = 9

    for model, branch, fname in ((tm, "template", "template.onnx"), (sm, "search", "search.onnx")):
        meta = build_metadata(cfg, branch=branch, template_outputs=names, checkpoint_sha256=f"random-seed-{seed}",
                              weights="random-realistic", xcorr=xcorr, batch=batch)
        meta.update((meta_overrides or {}).get(branch, {}))
        set_onnx_metadata(model, meta)
        onnx.checker.check_model(model)
        onnx.save(model, str(out / fname))
    return out
