"""What a model directory or an engine holds, and whether it runs here (``siamtrt inspect``).

In the manner of ``polygraphy inspect model`` and ``trtexec --loadEngine``: architecture and sizes, each branch's
inputs / outputs, precision and the float set an INT8 directory kept, parameters and GMAC per branch (at every
search size the graph accepts, so dynamic long-term exports get numbers too: the graph's symbolic dims are bound to
the real sizes before ONNX shape inference), what the weights are, and for each engine its sidecar, whether this
machine's TensorRT can load it and whether the file is the one that was built (sha256). Nothing is loaded into an
inference library: only ONNX protobufs and JSON are read, so it runs anywhere the runtime does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import EngineError, InputError, ModelDirError, SiamtrtError
from ..metadata import file_sha256, read_onnx_metadata, reexport_fix
from ..modeldir import BRANCHES, ENGINE_FILES, ONNX_FILES, ModelDir, build_command, sidecar_path
from .backends import backend_class

_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64",
           16: "bfloat16"}


# ----------------------------------------------------------------------------------------------------- ONNX
def _value_info(v) -> Dict[str, Any]:
    t = v.type.tensor_type
    return {"name": v.name, "dtype": _DTYPES.get(t.elem_type, str(t.elem_type)),
            "shape": [d.dim_param or d.dim_value for d in t.shape.dim]}


def _bound_shapes(model, inputs: Dict[str, Sequence[int]]) -> Dict[str, List[int]]:
    """Every tensor's shape after binding the graph inputs to ``inputs`` (ONNX shape inference, data propagation)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    for inp in m.graph.input:
        if inp.name in inputs:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, inputs[inp.name]):
                d.Clear()
                d.dim_value = int(v)
    for out in m.graph.output:  # symbolic output dims would otherwise pin the inferred ones to their names
        for d in out.type.tensor_type.shape.dim:
            d.Clear()
    try:  # ONNX Runtime's symbolic inference follows the Shape -> arithmetic -> Reshape chains of dynamic exports
        m = _symbolic_shape_inference().infer_shapes(m, auto_merge=True)
    except Exception:  # best effort: unknown shapes are reported as such, never as 0 MACs
        try:
            m = onnx.shape_inference.infer_shapes(m, data_prop=True)
        except Exception:
            pass
    shapes = {i.name: list(i.dims) for i in m.graph.initializer}
    for v in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        if dims and all(x is not None and x > 0 for x in dims):
            shapes[v.name] = dims
    return shapes


@functools.lru_cache(maxsize=1)
def _symbolic_shape_inference():
    """``onnxruntime.tools.symbolic_shape_infer.SymbolicShapeInference``, loaded from its file: importing the
    ``onnxruntime.tools`` package imports torch when torch is installed (seconds, and never in the runtime)."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnxruntime is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "tools" / "symbolic_shape_infer.py"
    mod_spec = importlib.util.spec_from_file_location("_siamtrt_symbolic_shape_infer", path)
    if mod_spec is None or mod_spec.loader is None:
        raise ImportError(f"{path} not found")
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.SymbolicShapeInference


def count_macs(model, inputs: Dict[str, Sequence[int]]) -> Dict[str, Any]:
    """Multiply-accumulates of Conv / ConvTranspose / Gemm / MatMul nodes with the graph inputs bound to ``inputs``.

    Correlations whose kernel is a graph input (the depthwise xcorr) count too. Returns ``{"macs": float or None,
    "unknown": [node names whose shapes could not be inferred]}`` (None when any is unknown).
    """
    shapes = _bound_shapes(model, inputs)
    macs, unknown = 0.0, []
    for n in model.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        out = shapes.get(n.output[0])
        w = shapes.get(n.input[1]) if len(n.input) > 1 else None
        if not out or not w:
            unknown.append(n.name or n.output[0])
            continue
        if n.op_type == "Conv":
            macs += float(np.prod(out)) * float(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose":
            a = shapes.get(n.input[0])
            if not a:
                unknown.append(n.name)
                continue
            macs += float(np.prod(a)) * float(np.prod(w[1:]))
        else:  # Gemm / MatMul: output elements x the reduced dimension
            macs += float(np.prod(out)) * float(w[-2] if n.op_type == "MatMul" else w[0] if w else 0)
    return {"macs": None if unknown else macs, "unknown": unknown}


#: why a report has no graph detail: tracking never needs the onnx package, so a minimal install lacks it
NO_ONNX = "I/O, parameters and GMAC not shown: no onnx package here (tracking needs none; pip install onnx shows them)"


def _load_onnx(path: Path, weights: bool = True) -> Optional[Any]:
    """The branch's ``onnx.ModelProto``, or None where the onnx package is not installed (a runtime-only install:
    the metadata comes from :func:`siamtrt.metadata.read_onnx_metadata`, which needs no onnx)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as e:  # DecodeError / google.protobuf errors: the metadata reader reads the header only
        raise ModelDirError(f"{path} is not a readable ONNX graph (corrupt?)", evidence=repr(e)[:300],
                            fix=reexport_fix(path)) from None


def _onnx_branch(path: Path, bind: Dict[str, Dict[str, Sequence[int]]]) -> Dict[str, Any]:
    """One branch file: I/O, opset, parameters, size, sha256 and GMAC per binding (label → input shapes)."""
    model = _load_onnx(path)
    if model is None:
        return {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path), "detail": NO_ONNX,
                "inputs": [], "outputs": [], "gmac": {}}
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    init_names = {i.name for i in model.graph.initializer}
    gmac = {}
    for label, inputs in bind.items():
        r = count_macs(model, inputs)
        gmac[label] = None if r["macs"] is None else float(f"{r['macs'] / 1e9:.6g}")
        if r["unknown"]:
            gmac[label + " (unknown nodes)"] = r["unknown"][:5]
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path),
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "nodes": len(model.graph.node), "params": params,
            "inputs": [_value_info(v) for v in model.graph.input if v.name not in init_names],
            "outputs": [_value_info(v) for v in model.graph.output], "gmac": gmac}


def _single_file_binding(path: Path, size: int) -> Dict[str, List[int]]:
    """Input shapes of one branch file alone: batch 1, the image input at ``size``, the kernels' static dims."""
    model = _load_onnx(path, weights=False)
    out: Dict[str, List[int]] = {}
    for v in model.graph.input if model is not None else ():
        dims = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        if v.name in ("template", "search"):
            out[v.name] = [1, 3, size, size]
        elif dims and all(d is not None for d in dims[1:]):
            out[v.name] = [1] + dims[1:]
    return out


def _kernel_shapes(template_path: Path, exemplar: int) -> Dict[str, List[int]]:
    model = _load_onnx(template_path)
    if model is None:
        return {}
    shapes = _bound_shapes(model, {"template": [1, 3, exemplar, exemplar]})
    return {o.name: shapes[o.name] for o in model.graph.output if o.name in shapes}


# ----------------------------------------------------------------------------------------------------- engines
def tensorrt_here() -> Dict[str, Any]:
    """The TensorRT package / version importable here and the CUDA device, or why there is none."""
    from ..gpu.cuda import probe_cuda
    from ..gpu.tensorrt import import_tensorrt

    try:
        trt = import_tensorrt()
        info: Dict[str, Any] = {"package": trt.package, "version": trt.version}
    except EngineError as e:
        info = {"package": None, "version": None, "reason": e.what}
    probe = probe_cuda()
    info["gpu"] = probe.describe()
    info["device"] = probe.devices[0] if probe.available else None
    return info


def engine_report(engine_path: Union[str, Path], here: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """An engine's sidecar facts, its integrity (sha256 and size vs the sidecar) and whether it loads here.

    Raises:
        EngineError: the engine or its sidecar is missing or unreadable (nothing to report on).
    """
    from .engines import check_sidecar, read_sidecar

    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineError(f"engine {engine_path} does not exist",
                          fix=f"build it: {build_command('DIR')}")
    side = read_sidecar(engine_path)
    here = tensorrt_here() if here is None else here
    eng = side.get("engine") or {}
    actual = file_sha256(engine_path)
    size = engine_path.stat().st_size
    intact = (eng.get("sha256") in (None, actual)) and (eng.get("bytes") in (None, size))
    trt_info = side.get("tensorrt") or {}
    rep: Dict[str, Any] = {
        "file": str(engine_path), "sidecar": str(sidecar_path(engine_path)), "bytes": size, "sha256": actual,
        "integrity": "ok (sha256 and size match the sidecar)" if intact else
        f"MODIFIED since it was built: sha256 {actual[:16]}… / {size} bytes on disk, sidecar records "
        f"{str(eng.get('sha256'))[:16]}… / {eng.get('bytes')} bytes",
        "intact": intact,
        "built_with": f"{trt_info.get('package', trt_info.get('flavour'))} {trt_info.get('version')}",
        "gpu": side.get("gpu"), "precision": side.get("precision"), "typing": side.get("typing"),
        "xcorr": side.get("xcorr"), "profile": side.get("profile"), "io": side.get("io"),
        "plugin": side.get("plugin"), "source_onnx": side.get("source_onnx"),
        "rebuild_command": side.get("rebuild_command"),
    }
    if here.get("package") is None:
        rep["loads_here"], rep["compatibility"] = False, f"no TensorRT here ({here.get('reason')})"
    else:
        try:
            warnings = check_sidecar(engine_path, side, package=here["package"], version=here["version"],
                                     device=here.get("device"), check_onnx=True)
            rep["loads_here"] = True
            rep["compatibility"] = (f"compatible with {here['package']} {here['version']} here"
                                    + ("" if here.get("device") else f" (no GPU here to run it: {here['gpu']})")
                                    + "".join(f"; {w}" for w in warnings))
        except EngineError as e:
            rep["loads_here"], rep["compatibility"] = False, e.what + (f" — fix: {e.fix}" if e.fix else "")
    return rep


# -------------------------------------------------------------------------------------------------- model dir
def _float_set(md: ModelDir) -> Optional[Dict[str, Any]]:
    q = md.quantization
    if not q:
        return None
    fid = q.get("fidelity") if isinstance(q.get("fidelity"), dict) else {}
    branches = {b: {"float_nodes": v.get("float_nodes"), "float_mac_share": v.get("float_mac_share"),
                    "prefix": v.get("prefix")} for b, v in (fid.get("branches") or {}).items()}
    return {"target": q.get("target"), "format": q.get("format"), "activations": q.get("activation_type"),
            "weights": q.get("weight_type"), "float_nodes": list(q.get("excluded_nodes") or []),
            "float_mac_share": q.get("float_mac_share"), "branches": branches,
            "min_cosine": fid.get("min_cosine"), "met": fid.get("met"), "calib_file": q.get("calib_file")}


def _bf16_record(md: ModelDir, template_sha256: str, search_sha256: str) -> Optional[Dict[str, Any]]:
    """The OpenVINO bf16 record that ``precision="auto"`` would read for these files (metadata, else the user cache
    folder), and whether it speaks for the OpenVINO installed here (None: no record)."""
    from .openvino import bf16_plan, default_cache_dir, model_key, stale_bf16_record, stored_bf16_record

    rec, where = stored_bf16_record(md.meta, default_cache_dir(), lambda: model_key(template_sha256, search_sha256))
    if rec is None:
        return None
    template_bf16, f32_convs = bf16_plan(rec)
    return {"where": where, "passed": bool(rec.get("passed")), "cls": rec.get("cls"), "loc": rec.get("loc"),
            "crops": rec.get("crops"), "reference": rec.get("reference"), "reason": rec.get("reason"),
            "template_bf16": template_bf16, "f32_convs": f32_convs, "openvino": rec.get("openvino"),
            "stale": stale_bf16_record(rec)}


def model_dir_report(path: Union[str, Path], engines: bool = True) -> Dict[str, Any]:
    """Everything :mod:`siamtrt inspect <DIR>` prints, as a JSON-ready dict.

    Raises:
        ModelDirError: not a readable model directory (what is wrong and the fix).
    """
    md = ModelDir.open(path)
    t = md.track
    kernels = _kernel_shapes(md.onnx("template"), md.exemplar_size)
    search_bind = {f"{s}x{s}": {"search": [1, 3, s, s], **kernels} for s in md.instance_sizes}
    rep: Dict[str, Any] = {
        "path": str(md.path), "kind": "model directory", "arch": md.arch, "family": md.family,
        "flavour": md.flavour, "siamtrt_version": md.meta.get("version"),
        "sizes": {"exemplar": md.exemplar_size, "instance": md.instance_size, "instance_sizes": list(md.instance_sizes),
                  "score": md.score_size, "stride": md.anchor.stride, "anchors": len(md.anchor.ratios) *
                  len(md.anchor.scales), "lost_instance_size": t.lost_instance_size},
        "tracking": {"default_mode": t.mode, "penalty_k": t.penalty_k, "window_influence": t.window_influence,
                     "lr": t.lr},
        "precision": md.precision, "xcorr": md.xcorr, "batch": md.batch,
        "weights": {"kind": md.weights, "line": md.weights_line, "checkpoint_sha256": md.checkpoint_sha256},
        "float_set": _float_set(md),
        "branches": {"template": _onnx_branch(md.onnx("template"), {
                         f"{md.exemplar_size}x{md.exemplar_size}": {"template": [1, 3, md.exemplar_size,
                                                                                 md.exemplar_size]}}),
                     "search": _onnx_branch(md.onnx("search"), search_bind)},
        "engines": {},
    }
    rep["openvino_bf16"] = _bf16_record(md, rep["branches"]["template"]["sha256"], rep["branches"]["search"]["sha256"])
    rep["openvino_here"] = backend_class("openvino").unavailable_reason() or "installed"
    if engines:
        rep["engines"], here = _engine_entries({b: md.engine(b) for b in BRANCHES})
        if here is not None:
            rep["tensorrt_here"] = {k: v for k, v in here.items() if k != "device"}
    return rep


def _engine_entry(engine_path: Path, here: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`engine_report`, or the error that prevented it as an entry whose check failed (an edited or unreadable
    sidecar is reported like a modified engine, not the end of the report)."""
    try:
        return engine_report(engine_path, here)
    except SiamtrtError as err:
        return {"file": str(engine_path), "error": str(err), "intact": False, "loads_here": False}


def _missing_engine(engine_path: Path) -> Dict[str, Any]:
    """The entry of a branch whose engine is absent while the other branch's is there."""
    from .engines import rebuild_command

    side = sidecar_path(engine_path)
    what = (f"{engine_path} is missing, its sidecar {side.name} is left (an orphan)" if side.is_file() else
            f"{engine_path} is missing (and its sidecar {side.name})")
    err = EngineError(what, evidence="the tensorrt backend runs both branches' engines",
                      fix=f"rebuild the engines: {rebuild_command(engine_path)}")
    return {"file": str(engine_path), "error": str(err), "intact": False, "loads_here": False, "missing": True}


def _engine_entries(paths: Dict[str, Path]) -> Tuple[Dict[str, Dict[str, Any]], Optional[Dict[str, Any]]]:
    """Each branch's engine entry once any engine or sidecar is there (the TensorRT backend needs both engines: a
    missing one, or an orphan sidecar, is a failed check), and what TensorRT is here (None: no engines)."""
    if not any(p.is_file() or sidecar_path(p).is_file() for p in paths.values()):
        return {}, None
    here = tensorrt_here()
    return {b: _engine_entry(p, here) if p.is_file() else _missing_engine(p) for b, p in paths.items()}, here


def inspect_path(path: Union[str, Path]) -> Dict[str, Any]:
    """Report on a model directory, an engine file (``*.engine``) or one branch's ONNX file.

    Raises:
        InputError: a path that is none of these. ModelDirError / EngineError: an unreadable one.
    """
    p = Path(path)
    if p.is_dir() and not any((p / f).is_file() for f in ONNX_FILES.values()):  # engines built with --out elsewhere
        entries, here = _engine_entries({b: p / f for b, f in ENGINE_FILES.items()})
        if here is not None:
            return {"kind": "engine directory", "path": str(p), "engines": entries,
                    "tensorrt_here": {k: v for k, v in here.items() if k != "device"}}
    if p.is_dir():
        return model_dir_report(p)
    if not p.exists():
        raise InputError(f"{p} does not exist", fix="pass a model directory, an .engine file or an .onnx file")
    if p.suffix == ".engine":  # one engine whose sidecar cannot be read has nothing to report: exit 2
        here = tensorrt_here()
        rep = engine_report(p, here)
        rep["kind"] = "engine"
        rep["tensorrt_here"] = {k: v for k, v in here.items() if k != "device"}
        return rep
    if p.suffix == ".onnx":
        meta = read_onnx_metadata(p)
        size = meta.get("exemplar_size") if meta.get("branch") == "template" else meta.get("instance_size")
        rep = _onnx_branch(p, {f"{size}x{size}": _single_file_binding(p, int(size))})
        rep.update(kind="onnx branch", branch=meta.get("branch"), arch=meta.get("arch"),
                   precision=meta.get("precision"))
        return rep
    raise InputError(f"{p} is neither a model directory, an .engine file nor an .onnx file",
                     fix="siamtrt inspect models/NAME (or models/NAME/search.engine)")


# ----------------------------------------------------------------------------------------------------- text
def _shape(s: Sequence[Any]) -> str:
    return "[" + ",".join(str(d) for d in s) + "]"


def _gmac_text(g: Dict[str, Any]) -> str:
    parts = []
    for k, v in g.items():
        if k.endswith("(unknown nodes)"):
            continue
        parts.append(f"{v:.3f} GMAC at {k}" if v is not None else f"GMAC unknown at {k} (shapes of "
                                                                   f"{', '.join(g.get(k + ' (unknown nodes)', []))} "
                                                                   "not inferred)")
    return "; ".join(parts) or "GMAC not computed"


def _engine_lines(b: str, e: Dict[str, Any]) -> List[str]:
    if "error" in e:
        return [f"  {b}: " + e["error"].replace("\n", "\n    ")]
    gpu = e.get("gpu") or {}
    where = "built without a GPU" if gpu.get("built_without_gpu") else f"built on {gpu.get('name')} " \
                                                                        f"(sm {gpu.get('compute_capability')})"
    return [f"  {b}: {e['file']} ({e['bytes'] / 1e6:.1f} MB) — {e['built_with']}, {where}, precision "
            f"{e.get('precision')}, xcorr {e.get('xcorr')}",
            f"    integrity: {e['integrity']}", f"    here: {e['compatibility']}"]


def _bf16_line(b: Optional[Dict[str, Any]], here: str) -> str:
    if b is None:
        return ("  OpenVINO bf16: no record (precision auto runs f32; measure it: siamtrt quantize "
                "--model DIR --calib calib.npz --check-bf16)" if here == "installed" else
                f"  OpenVINO bf16: no record ({here}: nothing here would use one)")
    from .openvino import bf16_plan_text

    ref = "the FP32 source" if str(b["reference"] or "").startswith("source") else "f32"
    figures = (f"worst template cls {b['cls']:.4f}, loc {b['loc']:.4f} vs {ref} on {b['crops']} crops"
               if b["cls"] is not None else f"not measured: {b['reason']}")
    use = (f"not used here: {b['stale']}; measure again with --check-bf16" if b["stale"] else
           "auto runs f32" if not b["passed"] else "auto uses bf16" if here == "installed" else
           f"auto uses bf16 where OpenVINO is installed ({here})")
    return (f"  OpenVINO bf16: {'kept' if b['passed'] else 'refused'} ({bf16_plan_text(b)}; {figures}; OpenVINO "
            f"{b['openvino'] or '?'}) — {use}; record in {b['where']}")


def format_report(rep: Dict[str, Any]) -> str:
    """The report as text (``siamtrt inspect`` without ``--json``)."""
    if rep.get("kind") == "engine":
        lines = [f"engine {rep['file']}"] + _engine_lines("engine", rep)[1:]
        lines.insert(1, _engine_lines("engine", rep)[0].replace("  engine: ", "  "))
        prof = (rep.get("profile") or {}).get("shapes") or {}
        for name, io in (rep.get("io") or {}).items():
            p = prof.get(name) or {}
            rng = f" (profile min {_shape(p['min'])} opt {_shape(p['opt'])} max {_shape(p['max'])})" \
                if p and p.get("min") != p.get("max") else ""
            lines.append(f"    tensor {name:14s} {_shape((io or {}).get('shape') or [])}{rng}")
        if rep.get("rebuild_command"):
            lines.append(f"  rebuild: {rep['rebuild_command']}")
        return "\n".join(lines)
    if rep.get("kind") == "engine directory":
        lines = [f"engine directory {rep['path']} (no ONNX files beside the engines)"]
        for b, e in rep["engines"].items():
            lines += _engine_lines(b, e)
        return "\n".join(lines)
    if rep.get("kind") == "onnx branch":
        return "\n".join([f"{rep['file']}: {rep.get('arch')} {rep.get('branch')} branch, {rep.get('precision')}, "
                          + (rep["detail"] + ", " if "detail" in rep else
                             f"opset {rep['opset']}, {rep['params'] / 1e6:.2f} M params, ")
                          + f"{rep['bytes'] / 1e6:.1f} MB"]
                         + [f"  input  {v['name']} {v['dtype']} {_shape(v['shape'])}" for v in rep["inputs"]]
                         + [f"  output {v['name']} {v['dtype']} {_shape(v['shape'])}" for v in rep["outputs"]]
                         + ([f"  {_gmac_text(rep['gmac'])}"] if rep["gmac"] else []))
    s = rep["sizes"]
    lines = [f"model directory {rep['path']}",
             f"  architecture: {rep['arch']} ({rep['family']}, {rep['flavour']} conventions; siamtrt "
             f"{rep['siamtrt_version']})",
             f"  sizes: exemplar {s['exemplar']}, search {', '.join(map(str, s['instance_sizes']))}"
             + (f" (lost-state {s['lost_instance_size']})" if s.get("lost_instance_size") else "")
             + f", score map {s['score']}x{s['score']}x{s['anchors']}, stride {s['stride']}",
             f"  tracking: default mode {rep['tracking']['default_mode']}, PK {rep['tracking']['penalty_k']} / "
             f"WI {rep['tracking']['window_influence']} / LR {rep['tracking']['lr']}",
             f"  precision {rep['precision']}, xcorr {rep['xcorr']}, batch {rep['batch']}",
             f"  weights: {rep['weights']['line']}" + (f"; checkpoint sha256 {rep['weights']['checkpoint_sha256']}"
                                                        if rep["weights"]["kind"] == "checkpoint" else "")]
    fs = rep.get("float_set")
    if fs:
        per = "; ".join(f"{b} {v['float_nodes']} nodes ({(v['float_mac_share'] or 0) * 100:.1f} % of conv MACs)"
                        for b, v in fs["branches"].items())
        lines.append(f"  quantization: {fs['format']} for {fs['target']}, activations {fs['activations']}, weights "
                     f"{fs['weights']}; float set {len(fs['float_nodes'])} nodes"
                     + (f" ({fs['float_mac_share'] * 100:.1f} % of conv MACs)" if fs.get("float_mac_share") else "")
                     + (f" — {per}" if per else "")
                     + (f"; fidelity target {fs['min_cosine']} {'met' if fs['met'] else 'NOT met'}"
                        if fs.get("min_cosine") is not None else ""))
        if fs["float_nodes"]:
            lines.append(f"    float nodes: {', '.join(fs['float_nodes'][:12])}"
                         + (f", … ({len(fs['float_nodes'])} in all; --json lists them)" if len(fs['float_nodes']) > 12
                            else ""))
    lines.append(_bf16_line(rep.get("openvino_bf16"), rep.get("openvino_here", "installed")))
    for b in BRANCHES:
        r = rep["branches"][b]
        lines.append(f"  {b}: {ONNX_FILES[b]} {r['bytes'] / 1e6:.1f} MB, sha256 {r['sha256'][:16]}…, "
                     + (r["detail"] if "detail" in r else f"opset {r['opset']}, {r['nodes']} nodes, "
                        f"{r['params'] / 1e6:.2f} M params; {_gmac_text(r['gmac'])}"))
        lines += [f"    input  {v['name']:14s} {v['dtype']:8s} {_shape(v['shape'])}" for v in r["inputs"]]
        lines += [f"    output {v['name']:14s} {v['dtype']:8s} {_shape(v['shape'])}" for v in r["outputs"]]
    if rep["engines"]:
        here = rep.get("tensorrt_here") or {}
        lines.append(f"  engines (TensorRT here: {here.get('package') or 'none'} {here.get('version') or ''}; "
                     f"{here.get('gpu')}):")
        for b, e in rep["engines"].items():
            lines += _engine_lines(b, e)
    else:
        lines.append(f"  engines: none ({' / '.join(ENGINE_FILES.values())} absent; "
                     f"{build_command(rep['path'])})")
    return "\n".join(lines)


__all__ = ["count_macs", "engine_report", "format_report", "inspect_path", "model_dir_report", "tensorrt_here"]
