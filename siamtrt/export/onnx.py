"""Split a tracker into template.onnx and search.onnx, check them, and prove them equal to PyTorch.

One function per artifact (``export_template``, ``export_search``) and one driver (``export_model``) that writes the
model directory, its metadata (defined once in siamtrt.metadata) and a summary. Export uses torch's dynamo exporter
(the TorchScript exporter mis-exported the folded grouped conv here: 4.5 relative error on alex), then
``onnx.checker``, shape inference and onnxslim; a parity run in ONNX Runtime against PyTorch on the same random
inputs must stay within 1e-4 relative error or the export fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import onnx
import torch
import torch.nn as nn

from ..config import ModelConfig, get_config
from ..calibration.derive import check_model_out_dir, check_replaced_weights, staged_model_dir
from ..errors import ExportError
from ..modeldir import BATCH_FORMS, ONNX_FILES, XCORR_FORMS, ModelDir
from ..progress import progress_bar
from ..metadata import (SEARCH_INPUT, SEARCH_OUTPUTS, TEMPLATE_INPUT, build_metadata, export_weights,
                        random_weights_label, set_onnx_metadata)
from .checkpoint import load_checkpoint, require_checkpoint
from .models import build_model

log = logging.getLogger(__name__)

PARITY_RTOL = 1e-4
DEFAULT_OPSET = 18  # the dynamo exporter's lowest native opset
# Lower opsets (TensorRT 8.5 on JetPack 5 parses up to 17) are made by exporting at 18 and converting the *simplified*
# graph with onnx.version_converter: the exporter's own down-conversion produced wrong numbers here (rel. error 4.7).
EXPORT_OPSET = 18


@dataclass
class ExportResult:
    """What ``export_model`` wrote and measured."""

    out_dir: Path
    template_path: Path
    search_path: Path
    metadata: Dict[str, Any]
    parity: Dict[str, Dict[str, float]] = field(default_factory=dict)
    summary: List[Dict[str, Any]] = field(default_factory=list)
    weights: str = "checkpoint"
    seconds: float = 0.0
    model: Optional[nn.Module] = field(default=None, repr=False, compare=False)  # the exported PyTorch model

    @property
    def trained(self) -> bool:
        """Weights loaded from a checkpoint file (see ``weights`` for the kind)."""
        return self.weights == "checkpoint"

    def table(self) -> str:
        """The summary as an aligned text table."""
        cols = ["file", "inputs", "outputs", "params (M)", "GMAC", "size (MB)"]
        rows = [[str(r[c]) for c in cols] for r in self.summary]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths))  # noqa: E731
        lines = [fmt(cols), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
        for name, p in self.parity.items():
            lines.append(f"parity {name}: max abs {p['max_abs']:.3g}, relative {p['rel']:.3g} (limit {PARITY_RTOL:g})")
        return "\n".join(lines)


class _TemplateBranch(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, template):
        return self.model.template(template)


class _SearchBranch(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, search, *kernels):
        return self.model.track(search, *kernels)


def _torch_export(module: nn.Module, args: Tuple[torch.Tensor, ...], path: Path, input_names: List[str],
                  output_names: List[str], dynamic_shapes, opset: int) -> None:
    """Run torch's dynamo exporter quietly (its progress chatter goes to the debug log)."""
    buf = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                              opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes, optimize=True,
                              external_data=False)
    except Exception as e:
        log.debug(buf.getvalue())
        raise ExportError(f"torch.onnx.export failed for {path.name}",
                          evidence=f"{type(e).__name__}: {str(e)[:600]}",
                          fix="check the torch version (>= 2.6 needed for the dynamo exporter) or try --opset 18"
                          ) from e
    log.debug(buf.getvalue())


def _finish(path: Path, meta: Dict[str, Any], simplify: bool, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """checker → shape inference → onnxslim → (opset conversion) → metadata → save."""
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise ExportError(f"exported {path.name} fails the ONNX checker / shape inference",
                          evidence=str(e)[:600], fix="report this with the config name and torch version") from e
    if simplify:
        import onnxslim

        with contextlib.redirect_stdout(io.StringIO()):
            model = onnxslim.slim(model)
        onnx.checker.check_model(model)
    if opset < EXPORT_OPSET:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, opset)
            onnx.checker.check_model(model)
        except Exception as e:
            raise ExportError(f"cannot convert {path.name} to opset {opset}", evidence=str(e)[:400],
                              fix=f"use --opset {EXPORT_OPSET} or higher") from e
    model.producer_name = "siamtrt"
    set_onnx_metadata(model, meta)
    onnx.save(model, str(path))
    return model


def _conv_macs_and_params(model: onnx.ModelProto) -> Tuple[float, int]:
    """Multiply-accumulates of Conv nodes at batch 1 (from inferred shapes) and initializer parameter count."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    macs = 0.0
    for node in inferred.graph.node:
        if node.op_type != "Conv":
            continue
        w = inits.get(node.input[1]) or shapes.get(node.input[1])
        out = shapes.get(node.output[0])
        if w and out and len(w) == 4:
            macs += float(np.prod(out)) * w[1] * w[2] * w[3]
    params = sum(int(np.prod(d)) for d in inits.values())
    return macs, params


def _io_desc(values) -> str:
    return "; ".join(f"{v.name}[{','.join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)}]"
                     for v in values)


def export_template(model: nn.Module, path: Path, meta: Dict[str, Any], opset: int = DEFAULT_OPSET,
                    dynamic_batch: bool = True, simplify: bool = True) -> Path:
    """Write template.onnx: input ``template`` [N,3,E,E] → the per-target kernels."""
    e = model.cfg.track.exemplar_size
    n = 2 if dynamic_batch else 1
    z = torch.rand(n, 3, e, e) * 255
    names = model.template_output_names
    dyn = {"template": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic_batch else None
    _torch_export(_TemplateBranch(model), (z,), path, [TEMPLATE_INPUT], names, dyn, max(opset, EXPORT_OPSET))
    _finish(path, meta, simplify, opset)
    return path


def export_search(model: nn.Module, path: Path, meta: Dict[str, Any], opset: int = DEFAULT_OPSET,
                  dynamic_batch: bool = True, simplify: bool = True) -> Path:
    """Write search.onnx: ``search`` [N,3,S,S] + the kernels → ``cls`` [N,2A,H,W], ``loc`` [N,4A,H,W]."""
    t = model.cfg.track
    n = 2 if dynamic_batch else 1
    with torch.no_grad():
        kernels = model.template(torch.rand(n, 3, t.exemplar_size, t.exemplar_size) * 255)
    x = torch.rand(n, 3, t.instance_size, t.instance_size) * 255
    names = model.template_output_names
    dyn = None
    several = len(t.instance_sizes) > 1  # DaSiamRPN BIG: 271 / 287 per target; long-term: + the lost size (831)
    if dynamic_batch or several:
        batch = torch.export.Dim("batch", min=1, max=1024) if dynamic_batch else None
        xs = {0: batch} if batch is not None else {}
        if several:  # dynamic spatial axes: one graph for every search size (measured: docs/CONTRACT.md)
            xs.update({2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC})
        dyn = {"search": xs or None, "kernels": tuple(({0: batch} if batch is not None else None) for _ in names)}
    _torch_export(_SearchBranch(model), (x, *kernels), path, [SEARCH_INPUT, *names], list(SEARCH_OUTPUTS), dyn,
                  max(opset, EXPORT_OPSET))
    _finish(path, meta, simplify, opset)
    return path


def check_parity(model: nn.Module, template_path: Path, search_path: Path, batch: int,
                 seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Run both ONNX files in ONNX Runtime and the PyTorch model on the same random inputs; return errors."""
    import onnxruntime as ort

    t = model.cfg.track
    g = torch.Generator().manual_seed(seed)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    tsess = ort.InferenceSession(str(template_path), opts, providers=["CPUExecutionProvider"])
    ssess = ort.InferenceSession(str(search_path), opts, providers=["CPUExecutionProvider"])
    names = model.template_output_names
    results: Dict[str, Dict[str, float]] = {}

    def record(key, ref, got):
        ref = ref.detach().numpy()
        err = float(np.abs(ref - got).max())
        rel = err / max(float(np.abs(ref).max()), 1e-12)
        prev = results.get(key, {"max_abs": 0.0, "rel": 0.0})
        results[key] = {"max_abs": max(err, prev["max_abs"]), "rel": max(rel, prev["rel"])}

    for inst in t.instance_sizes:
        z = torch.rand(batch, 3, t.exemplar_size, t.exemplar_size, generator=g) * 255
        x = torch.rand(batch, 3, inst, inst, generator=g) * 255
        with torch.no_grad():
            kernels = model.template(z)
            cls, loc = model.track(x, *kernels)
        k_ort = tsess.run(names, {TEMPLATE_INPUT: z.numpy()})
        for name, ref, got in zip(names, kernels, k_ort):
            record(f"template:{name}", ref, got)
        feed = {SEARCH_INPUT: x.numpy(), **{n: k.numpy() for n, k in zip(names, kernels)}}
        c_ort, l_ort = ssess.run(list(SEARCH_OUTPUTS), feed)
        record("search:cls", cls, c_ort)
        record("search:loc", loc, l_ort)
    return results


#: untrained head constructions for export without a checkpoint
RANDOM_HEADS = ("realistic", "matching")


def export_model(config: Union[str, ModelConfig], out_dir: Union[str, Path],
                 checkpoint: Optional[Union[str, Path]] = None, *, verbose: bool = False, **options) -> ExportResult:
    """Export a tracker's two branches into a self-describing model directory (:func:`_export_model` documents
    ``options``: seed, opset, batch, xcorr, simplify, check, frames, progress, random_heads, lost_instance_size,
    fit_on, force).

    Third-party loggers and warnings (torch's "torchvision is not installed", onnxscript's constant folding) show
    only errors unless ``verbose``. The directory is written staged (:func:`siamtrt.calibration.derive
    .staged_model_dir`): a failed or interrupted export leaves ``out_dir`` as it was (absent, or the previous export).

    Raises:
        ConfigError, CheckpointError, ExportError, InputError: with what, evidence and fix.
    """
    with third_party_logs(verbose):
        return _export_model(config, out_dir, checkpoint, **options)


#: loggers of the libraries the export drives; below ERROR they print chatter ("torchvision is not installed",
#: constant-folding steps) that buries siamtrt's own lines
THIRD_PARTY_LOGGERS = ("torch", "onnxscript", "onnx_ir", "onnxslim")


@contextlib.contextmanager
def third_party_logs(verbose: bool = False):
    """Within the block, third-party loggers (:data:`THIRD_PARTY_LOGGERS`) and Python warnings show only errors,
    unless ``verbose``; levels are restored afterwards."""
    if verbose:
        yield
        return
    saved = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _check_request(cfg: ModelConfig, out_dir: Path, checkpoint, batch: str, xcorr: str, random_heads: str,
                   seed: int = 0, force: bool = False) -> None:
    """Everything checkable before a model is built: the options, the checkpoint file, the output directory (and
    whether it holds an export of other weights, which only ``force`` replaces)."""
    if batch not in BATCH_FORMS:
        raise ExportError(f"--batch must be 'dynamic' or '1', got {batch!r}",
                          fix="use --batch dynamic (multi-target) or --batch 1 (single target, static shapes)")
    if xcorr not in XCORR_FORMS:
        raise ExportError(f"--xcorr must be one of {XCORR_FORMS}, got {xcorr!r}")
    if random_heads not in RANDOM_HEADS:
        raise ExportError(f"--random-heads must be one of {RANDOM_HEADS}, got {random_heads!r}")
    if random_heads == "matching" and (cfg.family != "pysot" or checkpoint is not None):
        raise ExportError("--random-heads matching needs a pysot architecture and no --checkpoint",
                          evidence=f"config {cfg.name} ({cfg.family}), checkpoint {checkpoint}",
                          fix="drop --random-heads, or pick a pysot config (e.g. siamrpn_alex_dwxcorr)")
    if xcorr == "plugin" and cfg.family == "dasiamrpn":
        raise ExportError(f"--xcorr plugin: {cfg.name}'s up-channel correlation is not depthwise",
                          fix="export DaSiamRPN models with --xcorr conv")
    if checkpoint is not None:
        require_checkpoint(checkpoint)
    check_model_out_dir(out_dir)
    check_replaced_weights(out_dir, export_weights(checkpoint, seed, random_heads, cfg.name), force=force)


def _weights(cfg: ModelConfig, checkpoint, seed: int, frames, random_heads: str) -> Tuple[nn.Module, str, str]:
    """(model, checkpoint_sha256, weights kind): the checkpoint's weights, or seeded random ones made realistic
    (optionally with template-matching heads), loudly labelled untrained."""
    model = build_model(cfg)
    if checkpoint is not None:
        return model, load_checkpoint(model, checkpoint, cfg), "checkpoint"
    from .random_init import make_realistic

    torch.manual_seed(seed)
    model = make_realistic(build_model(cfg), frames, seed=seed)
    sha, weights = random_weights_label(seed), "random-realistic"
    if random_heads == "matching":
        from .matching_init import make_matching

        model = make_matching(model, frames, seed=seed)
        sha, weights = random_weights_label(seed, random_heads), "random-matching"
    log.warning("ONNX: no --checkpoint given: exporting SEEDED RANDOM WEIGHTS (seed %d). They are untrained: "
                "fine for speed and pipeline checks, useless for tracking.", seed)
    return model, sha, weights


def _summary_row(path: Path) -> Dict[str, Any]:
    m = onnx.load(str(path))
    macs, params = _conv_macs_and_params(m)
    return {"file": path.name, "inputs": _io_desc(m.graph.input), "outputs": _io_desc(m.graph.output),
            "params (M)": f"{params / 1e6:.2f}", "GMAC": f"{macs / 1e9:.2f}",
            "size (MB)": f"{os.path.getsize(path) / 1e6:.1f}"}


def _export_model(config: Union[str, ModelConfig], out_dir: Union[str, Path],
                  checkpoint: Optional[Union[str, Path]] = None,
                  seed: int = 0, opset: int = DEFAULT_OPSET, batch: str = "dynamic", xcorr: str = "conv",
                  simplify: bool = True, check: bool = True, frames=None, progress: bool = False,
                  random_heads: str = "realistic", lost_instance_size: Optional[int] = None,
                  fit_on: Optional[Union[str, Path]] = None, force: bool = False) -> ExportResult:
    """Export a tracker's two branches into a self-describing model directory.

    Args:
        config (str | ModelConfig): built-in name or pysot config.yaml path.
        out_dir (str | Path): directory to write template.onnx / search.onnx into (new, empty, or a model
            directory to replace).
        checkpoint (str | Path): the trained ``model.pth``. Defaults to None: seeded random weights made
            realistic (BatchNorm statistics from crops, scaled heads) — untrained, and recorded as such.
        seed (int): seed for random weights and parity inputs. Defaults to 0.
        opset (int): ONNX opset. Defaults to 18.
        batch (str): "dynamic" (multi-target batching) or "1" (static; the pysot grouped-conv form). Defaults to
            "dynamic".
        xcorr (str): "conv" (standard grouped Conv) or "plugin" (custom DepthwiseXCorr node for TensorRT).
        simplify (bool): run onnxslim. Defaults to True. check (bool): run the parity check. Defaults to True.
        frames: (image, box) pairs for the random-weight BatchNorm statistics. Defaults to those of ``fit_on``, else
            synthetic texture.
        fit_on (str | Path): an OTB-layout sequence folder (``img/`` + ``groundtruth_rect.txt``) whose frames and
            boxes the random weights are fitted on (``--fit-on``; read after every other check). Defaults to None.
        progress (bool): a progress line over the steps (siamtrt.progress). Defaults to False.
        random_heads (str): without a checkpoint: "realistic" (random heads) or "matching" (template-matching
            heads that follow the target, pysot models only: :mod:`.matching_init`). Defaults to "realistic".
        lost_instance_size (int): also export the long-term search size (pysot LOST_INSTANCE_SIZE, 831): the search
            graph then has dynamic spatial axes and the metadata lists the size. Defaults to None (the config's;
            a pysot ``_lt`` yaml sets 831).
        force (bool): replace an ``out_dir`` model directory exported from other weights (another checkpoint
            sha256, random instead of a checkpoint, another seed); without it that is refused before any work.
            Re-exporting the same weights replaces it either way. Defaults to False.

    Returns:
        ExportResult: paths, metadata, parity errors and summary rows.

    Raises:
        ConfigError, CheckpointError, ExportError, InputError: with what, evidence and fix.
    """
    start = time.perf_counter()
    cfg = config if isinstance(config, ModelConfig) else get_config(config)
    if lost_instance_size is not None:
        from ..config import with_longterm

        cfg = with_longterm(cfg, lost_instance_size)
    out_dir = Path(out_dir)
    _check_request(cfg, out_dir, checkpoint, batch, xcorr, random_heads, seed=seed, force=force)
    if frames is None and fit_on is not None and checkpoint is None:
        from .random_init import sequence_frames

        frames = sequence_frames(fit_on)
    with progress_bar(5, f"ONNX: {cfg.name}", "step", progress, leave=False) as bar:
        model, sha, weights = _weights(cfg, checkpoint, seed, frames, random_heads)
        model.eval()
        model.dynamic_batch = batch == "dynamic"
        bar.update(1)
        common = dict(template_outputs=model.template_output_names, checkpoint_sha256=sha, weights=weights,
                      batch=batch, opset=opset)
        with staged_model_dir(out_dir) as stage:
            s_meta, parity, summary = _write_branches(model, cfg, stage, common, xcorr=xcorr, opset=opset,
                                                      simplify=simplify, check=check, seed=seed, bar=bar)
    return ExportResult(out_dir=out_dir, template_path=out_dir / ONNX_FILES["template"],
                        search_path=out_dir / ONNX_FILES["search"], metadata=s_meta, parity=parity, summary=summary,
                        weights=weights, seconds=time.perf_counter() - start, model=model)


def _write_branches(model: nn.Module, cfg: ModelConfig, stage: Path, common: Dict[str, Any], *, xcorr: str,
                    opset: int, simplify: bool, check: bool, seed: int, bar):
    """template.onnx and search.onnx into the staged directory, the parity check, the plugin conversion:
    (search metadata, parity errors, summary rows)."""
    dynamic = model.dynamic_batch
    tpath, spath = stage / ONNX_FILES["template"], stage / ONNX_FILES["search"]
    with torch.no_grad():
        # xcorr names the directory's correlation form: the search graph is exported conv, converted below
        export_template(model, tpath, build_metadata(cfg, branch="template", xcorr=xcorr, **common), opset,
                        dynamic, simplify)
        bar.update(1)
        export_search(model, spath, build_metadata(cfg, branch="search", xcorr="conv", **common), opset, dynamic,
                      simplify)
        bar.update(1)
    parity: Dict[str, Dict[str, float]] = {}
    if check:
        parity = check_parity(model, tpath, spath, batch=2 if dynamic else 1, seed=seed)
        _require_parity(parity)
    bar.update(1)
    if xcorr == "plugin":
        from .xcorr_plugin_onnx import convert_search_to_plugin

        convert_search_to_plugin(spath, spath)
    s_meta = ModelDir.open(stage).meta  # the one reader cross-checks what was just written
    bar.update(1)
    return s_meta, parity, [_summary_row(p) for p in (tpath, spath)]


def _require_parity(parity: Dict[str, Dict[str, float]]) -> None:
    bad = {k: v for k, v in parity.items() if not v["rel"] <= PARITY_RTOL}
    if bad:
        raise ExportError(f"ONNX Runtime output differs from PyTorch beyond {PARITY_RTOL:g} relative error",
                          evidence="; ".join(f"{k}: rel {v['rel']:.3g}, max abs {v['max_abs']:.3g}"
                                             for k, v in bad.items()),
                          fix="try the default --opset 18; report the config and versions if it persists")
