"""Write a Triton Inference Server model repository from a siamtrt model directory.

Layout (names take a prefix, default ``siamtrt``)::

    REPO/siamtrt_template/config.pbtxt  1/model.onnx | 1/model.plan | 1/model.py + 1/model.onnx
    REPO/siamtrt_search/config.pbtxt    (dynamic batching: the search branch of several streams in one call)
    REPO/siamtrt_tracker/config.pbtxt   1/model.py + 1/siamtrt_model.json   (Python backend, sequence batcher)

Flavours of the two branch models:

* ``python`` — the Python backend running ONNX Runtime on the exported ONNX (for servers built without the
  ONNX Runtime backend, such as the ``tritonserver`` inside the ``nvidia-pytriton`` wheel);
* ``onnxruntime`` — ``platform: "onnxruntime_onnx"`` on the same ONNX files;
* ``tensorrt`` — ``platform: "tensorrt_plan"`` on ``template.engine`` / ``search.engine`` from build_engine.py
  (full TensorRT engines of the server's TensorRT version; TensorRT-RTX engines do not run in Triton's TensorRT
  backend, and are refused, as are engines whose sha256 or sidecar does not match, checked without a GPU).

Which directories each backend serves comes from the capability table (``triton_<backend>`` in
:data:`siamtrt.modeldir.TARGETS`).

Every shape, dtype and name in ``config.pbtxt`` is read from the ONNX graphs and the siamtrt metadata; the tracker
model is always Python (it holds per-sequence state and runs :class:`siamtrt.runtime.Tracker`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import EngineError, ModelDirError, SiamtrtError
from ..metadata import SEARCH_OUTPUTS
from ..modeldir import BRANCHES, ENGINE_FILES, TARGETS, ModelDir, build_command, check_target, sidecar_path
from ..outputs import check_replaceable, staged_dir
from ..runtime.engines import verify_integrity

LOG = logging.getLogger(__name__)

TRITON_BACKENDS = ("python", "onnxruntime", "tensorrt")
MODELS_DIR = Path(__file__).resolve().parent / "models"
META_FILE = "siamtrt_model.json"
VERSION_FILES = {"python": "model.onnx", "onnxruntime": "model.onnx", "tensorrt": "model.plan"}  # in <model>/1/
#: what a Triton model name (and so its folder in the repository) may hold
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 3: "TYPE_INT8", 2: "TYPE_UINT8",
                   6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL"}
_ONNX_TO_NUMPY = {1: "float32", 10: "float16", 11: "float64", 3: "int8", 2: "uint8", 6: "int32", 7: "int64",
                  9: "bool"}


class ServingError(SiamtrtError):
    """A model repository cannot be written, a server cannot be started, or a request failed."""


@dataclass
class TensorSpec:
    """One graph input or output: name, ONNX element type, shape with None for symbolic axes."""

    name: str
    elem_type: int
    shape: Tuple[Optional[int], ...]

    @property
    def triton_type(self) -> str:
        return _ONNX_TO_TRITON[self.elem_type]

    @property
    def numpy_type(self) -> str:
        return _ONNX_TO_NUMPY[self.elem_type]


@dataclass
class RepositoryReport:
    """What :func:`write_repository` wrote; ``summary()`` is what export/to_triton.py prints."""

    out: Path
    backend: str
    models: Dict[str, Path]
    max_batch: Dict[str, int]  # branch → the max_batch_size written (0: fixed batch of 1, no batching)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        batch = ", ".join(f"{b} max batch {mb}" if mb else f"{b} fixed batch 1" for b, mb in self.max_batch.items())
        lines = [f"Triton: wrote {self.out} ({self.backend} backend; {batch})"]
        lines += [f"  {name:<22} {path}" for name, path in self.models.items()]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"next: siamtrt serve --model-repository {self.out}   then   siamtrt client "
                     f"--url 127.0.0.1:8001 --video VIDEO --bbox x,y,w,h")
        return "\n".join(lines)


def graph_specs(onnx_path: Union[str, Path]) -> Tuple[List[TensorSpec], List[TensorSpec]]:
    """(inputs, outputs) of an ONNX graph, weights not loaded."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}

    def spec(v) -> TensorSpec:
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        if t.elem_type not in _ONNX_TO_TRITON:
            raise ModelDirError(f"{onnx_path}: tensor '{v.name}' has ONNX element type {t.elem_type}, which has no "
                                "Triton data type here", fix="re-export the model directory with to_onnx.py")
        return TensorSpec(v.name, t.elem_type, dims)

    return ([spec(v) for v in model.graph.input if v.name not in inits], [spec(v) for v in model.graph.output])


def _dims(shape: Tuple[Optional[int], ...], batched: bool) -> str:
    dims = shape[1:] if batched else shape
    return "[" + ", ".join(str(-1 if d is None else d) for d in dims) + "]"


def _io_block(kind: str, specs: List[TensorSpec], batched: bool) -> str:
    rows = [f'  {{ name: "{s.name}", data_type: {s.triton_type}, dims: {_dims(s.shape, batched)} }}' for s in specs]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def branch_config(name: str, backend: str, inputs: List[TensorSpec], outputs: List[TensorSpec], max_batch: int,
                  dynamic: bool, queue_delay_us: int, instances: int, threads: int) -> str:
    """``config.pbtxt`` of one branch model (template or search).

    Args:
        name (str): model name. backend (str): one of :data:`TRITON_BACKENDS`.
        inputs, outputs (list[TensorSpec]): graph I/O (first axis = batch when ``max_batch`` > 0).
        max_batch (int): Triton ``max_batch_size`` (0: the model has a fixed batch axis, not batchable).
        dynamic (bool): add a dynamic batcher (requests of several streams in one call).
        queue_delay_us (int): how long the dynamic batcher waits to fill a batch.
        instances (int): model instances. threads (int): ONNX Runtime intra-op threads (python backend).
    """
    head = f'name: "{name}"\n'
    if backend == "python":
        head += 'backend: "python"\n'
    elif backend == "onnxruntime":
        head += 'platform: "onnxruntime_onnx"\n'
    else:
        head += 'platform: "tensorrt_plan"\n'
    text = head + f"max_batch_size: {max_batch}\n"
    text += _io_block("input", inputs, max_batch > 0) + _io_block("output", outputs, max_batch > 0)
    if dynamic and max_batch > 1:
        text += f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
    kind = "KIND_GPU" if backend == "tensorrt" else "KIND_CPU"
    text += f"instance_group [ {{ kind: {kind}, count: {instances} }} ]\n"
    if backend == "python":
        text += (f'parameters: {{ key: "onnx_file", value: {{ string_value: "{VERSION_FILES[backend]}" }} }}\n'
                 f'parameters: {{ key: "threads", value: {{ string_value: "{threads}" }} }}\n')
    elif backend == "onnxruntime":
        text += f'parameters: {{ key: "intra_op_thread_count", value: {{ string_value: "{threads}" }} }}\n'
    return text


def tracker_config(name: str, max_streams: int, queue_delay_us: int, idle_seconds: float) -> str:
    """``config.pbtxt`` of the stateful tracker model (Python backend, Oldest-first sequence batcher).

    Inputs per request: ``frame`` (uint8 H×W×3 BGR, any size), ``init_box`` (x, y, w, h; read on START only);
    controls START / END / CORRID from the sequence batcher. Outputs: ``bbox`` (x, y, w, h) and ``score``, float64
    (the tracker's own precision, so boxes through the server compare exactly with the in-process runtime's).
    """
    return f'''name: "{name}"
backend: "python"
max_batch_size: {max_streams}
input [
  {{ name: "frame", data_type: TYPE_UINT8, dims: [-1, -1, 3], allow_ragged_batch: true }},
  {{ name: "init_box", data_type: TYPE_FP64, dims: [4], optional: true }}
]
output [
  {{ name: "bbox", data_type: TYPE_FP64, dims: [4] }},
  {{ name: "score", data_type: TYPE_FP64, dims: [1] }}
]
sequence_batching {{
  max_sequence_idle_microseconds: {int(idle_seconds * 1e6)}
  oldest {{
    max_candidate_sequences: {4 * max_streams}
    preferred_batch_size: [ {max_streams} ]
    max_queue_delay_microseconds: {queue_delay_us}
  }}
  control_input [
    {{ name: "START", control [ {{ kind: CONTROL_SEQUENCE_START, int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "END", control [ {{ kind: CONTROL_SEQUENCE_END, int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "CORRID", control [ {{ kind: CONTROL_SEQUENCE_CORRID, data_type: TYPE_UINT64 }} ] }}
  ]
}}
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
'''


def _check_options(backend: str, max_batch: int, queue_delay_us: int, instances: int, threads: int,
                   idle_seconds: float) -> None:
    if backend not in TRITON_BACKENDS:
        raise ServingError(f"unknown Triton backend '{backend}'", evidence=f"valid: {', '.join(TRITON_BACKENDS)}",
                           fix="--backend python (any tritonserver with the Python backend)")
    bad = {k: v for k, v in (("max_batch", max_batch), ("instances", instances), ("threads", threads)) if v < 1}
    if queue_delay_us < 0 or idle_seconds <= 0:
        bad.update(queue_delay_us=queue_delay_us, idle_seconds=idle_seconds)
    if bad:
        raise ServingError(f"invalid repository options {bad}",
                           fix="--max-batch, --instances and --threads take N >= 1, --queue-delay-us >= 0, "
                               "--idle-seconds > 0")


def _check_prefix(prefix: str) -> None:
    """The model names are ``PREFIX_template`` ... and name the model folders: a prefix holding "/" wrote nested
    folders Triton cannot load, an empty one wrote ``_template``."""
    if not isinstance(prefix, str) or not MODEL_NAME_RE.match(prefix):
        raise ServingError(f"--prefix {prefix!r} cannot start a Triton model name",
                           evidence="Triton model names (the repository's folder names) take letters, digits, '_', "
                                    "'-' and '.', and the prefix must not be empty",
                           fix="e.g. --prefix siamtrt (the default) or --prefix tracker_v2")


def _check_out_place(out: Path, sources: Dict[str, Path]) -> None:
    """Refuse an ``out`` that is, contains or lies inside a folder the repository is made from (``--model``,
    ``--engine``): the repository replaces ``out`` as a whole (``--overwrite`` deleted the model's ONNX files), and
    a repository inside a model directory mixes served copies into it."""
    o = out.resolve()
    for option, src in sources.items():
        s = Path(src).resolve()
        if o == s:
            relation = "is"
        elif o in s.parents:
            relation = "contains"
        elif s in o.parents:
            relation = "lies inside"
        else:
            continue
        raise ServingError(f"--out {out} {relation} the {option} directory {src}",
                           evidence="the repository is written as a folder of its own and replaces --out whole: "
                                    f"{src}'s files would be deleted or mixed with the repository's",
                           fix=f"pass an --out outside {src}, e.g. --out triton_repo")


def _written_model_names(folder: Path) -> set:
    """The model names listed by the ``1/siamtrt_model.json`` of the tracker models siamtrt wrote in ``folder``."""
    names = set()
    for meta in folder.glob(f"*/1/{META_FILE}"):
        try:
            models = json.loads(meta.read_text()).get("models")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(models, dict) and meta.parent.parent.name in models.values():
            names.update(str(v) for v in models.values())
    return names


def siamtrt_repository_models(folder: Union[str, Path]) -> Optional[List[str]]:
    """The model folders of a Triton repository siamtrt wrote in ``folder``, or None if it is not one.

    A written repository is recognised by its tracker model's ``1/siamtrt_model.json`` (it lists the repository's
    model names): ``folder`` is one when it holds such a file and nothing but the model folders it names.
    """
    folder = Path(folder)
    if not folder.is_dir() or not _written_model_names(folder) or _strays(folder):
        return None
    return sorted(p.name for p in folder.iterdir())


def _strays(folder: Path) -> List[str]:
    """What ``folder`` holds besides the model folders of a repository siamtrt wrote there (none if it wrote none):
    ``--overwrite`` would delete them."""
    names = _written_model_names(folder)
    return [p.name for p in folder.iterdir() if p.name not in names or not p.is_dir()] if names else []


def check_engines(md: ModelDir, engine_dir: Path, tensorrt_version: Optional[str] = None) -> Dict[str, Dict]:
    """The sidecars of the engines a ``tensorrt_plan`` repository would serve, after every check that needs no GPU.

    Refused: a missing engine; a corrupted or edited engine or sidecar, or one built from another ONNX than
    ``md``'s (:func:`siamtrt.runtime.engines.verify_integrity`); a TensorRT package Triton's TensorRT backend cannot
    load (TensorRT-RTX); a TensorRT version other than the server's ``tensorrt_version`` when it is given.

    Raises:
        ModelDirError: missing engines. EngineError: any other refusal (what, evidence, fix).
    """
    target = TARGETS["triton_tensorrt"]
    missing = md.missing_engines(engine_dir)
    if missing:
        raise ModelDirError(f"{engine_dir} lacks {list(missing)} for the tensorrt backend",
                            fix=f"{build_command(md.path)}  (full TensorRT, on the serving "
                                "GPU), or --backend python / onnxruntime")
    sides = {}
    for branch in BRANCHES:
        engine = md.engine(branch, engine_dir)
        side = verify_integrity(engine)
        rebuild = side.get("rebuild_command") or build_command(md.path)
        package, version = side["tensorrt"].get("package"), side["tensorrt"].get("version")
        if package not in target.engine_packages:
            raise EngineError(f"{engine} is a {package} {version} engine, which {target.what} cannot load",
                              evidence=f"{sidecar_path(engine).name}: tensorrt.package = {package!r}; Triton's "
                                       "TensorRT backend links full TensorRT (TensorRT-RTX engines need its own "
                                       "runtime)",
                              fix="build the engines with full TensorRT on the serving GPU ("
                                  f"{build_command(md.path)}), or write the repository with "
                                  "--backend python / onnxruntime")
        if (side.get("source_onnx") or {}).get("sha256") not in (None, md.sha256(branch)):
            raise EngineError(f"{engine} was not built from {md.onnx(branch)}",
                              evidence=f"the sidecar's source ONNX is {side['source_onnx'].get('path')} (sha256 "
                                       f"{side['source_onnx']['sha256'][:16]}…)",
                              fix=f"pass --engine with the engines of {md.path}, or build them: {rebuild}")
        if tensorrt_version is not None and version != tensorrt_version:
            raise EngineError(f"{engine} was built with TensorRT {version}; the server runs TensorRT "
                              f"{tensorrt_version}",
                              evidence="serialized engines load only in the TensorRT version that built them",
                              fix=f"rebuild with TensorRT {tensorrt_version} on the serving GPU ({rebuild}), or "
                                  f"serve it with the Triton release that ships TensorRT {version}")
        sides[branch] = side
    return sides


def _engine_batch(branch: str, side: Dict[str, Any], max_batch: int, notes: List[str]) -> int:
    """``max_batch_size`` for an engine's batch profile: 0 for a fixed batch of 1 (shapes carry it), else the
    smaller of ``max_batch`` and the profile's maximum.

    Raises:
        EngineError: a batch profile Triton cannot feed (a fixed batch above 1, or a minimum above 1: Triton's
            batcher sends 1..N requests and does not pad).
    """
    b = side.get("profile", {}).get("batch", {})
    fixed, lo, hi = b.get("fixed"), int(b.get("min", 1)), int(b.get("max", 1))
    if fixed is not None and int(fixed) > 1 or fixed is None and lo > 1:
        raise EngineError(f"{ENGINE_FILES[branch]} takes only batches of {fixed or lo}..{fixed or hi}; Triton's "
                          "batcher sends any batch from 1 and does not pad",
                          evidence=f"engine profile {b}" + (" (conv-mode correlation: a fixed search batch)"
                                                            if fixed else ""),
                          fix="rebuild with --max-batch 1 (one stream per call), or with --xcorr plugin (full "
                              "TensorRT: a true 1..N profile)")
    if fixed is not None:
        notes.append(f"{ENGINE_FILES[branch]} has a fixed batch of 1: streams are not batched into one call")
        return 0
    if hi < max_batch:
        notes.append(f"{ENGINE_FILES[branch]}'s profile allows batch <= {hi}: max_batch_size {hi} "
                     f"(--max-batch {max_batch} asked)")
    return min(hi, max_batch)


def _branch_models(md: ModelDir, backend: str, sides: Dict[str, Dict], max_batch: int, notes: List[str]
                   ) -> Dict[str, Tuple[List[TensorSpec], List[TensorSpec], int]]:
    """Per branch: (inputs, outputs, max_batch_size) as the served model sees them (engines: their batch)."""
    out = {}
    for branch in BRANCHES:
        ins, outs = graph_specs(md.onnx(branch))
        if branch == "search":
            order = {n: i for i, n in enumerate(SEARCH_OUTPUTS)}
            outs = sorted(outs, key=lambda s: order.get(s.name, 99))
        mb = max_batch if md.dynamic_batch else 0
        if backend == "tensorrt" and md.dynamic_batch:
            mb = _engine_batch(branch, sides[branch], max_batch, notes)
            if mb == 0:  # the engine's own fixed batch (1) is part of every shape
                ins, outs = ([TensorSpec(t.name, t.elem_type, (1,) + t.shape[1:]) for t in ts] for ts in (ins, outs))
        out[branch] = (ins, outs, mb)
    return out


def write_repository(model_dir: Union[str, Path], out: Union[str, Path], backend: str = "python",
                     engine_dir: Optional[Union[str, Path]] = None, prefix: str = "siamtrt", max_batch: int = 8,
                     queue_delay_us: int = 2000, instances: int = 1, threads: int = 1,
                     idle_seconds: float = 60.0, overwrite: bool = False,
                     tensorrt_version: Optional[str] = None) -> RepositoryReport:
    """Write the Triton model repository for ``model_dir`` into ``out``.

    Everything is checked before anything is written, and the repository is built under a temporary name beside
    ``out`` and renamed into place when complete (an error or Ctrl-C leaves ``out`` as it was).

    Args:
        model_dir (str | Path): siamtrt model directory (template.onnx, search.onnx).
        out (str | Path): repository folder (created; must be empty unless ``overwrite``).
        backend (str): "python", "onnxruntime" or "tensorrt". Defaults to "python".
        engine_dir (str | Path): where template.engine / search.engine are (tensorrt). Defaults to model_dir.
        prefix (str): model name prefix. Defaults to "siamtrt".
        max_batch (int): most streams per branch call (capped by an engine's profile) and per tracker batch.
            Defaults to 8.
        queue_delay_us (int): dynamic/sequence batcher queue delay. Defaults to 2000.
        instances (int): branch model instances. Defaults to 1.
        threads (int): ONNX Runtime intra-op threads per branch instance. Defaults to 1.
        idle_seconds (float): a sequence idle this long is released. Defaults to 60.
        overwrite (bool): replace an existing repository siamtrt wrote (once the new one is complete; a folder
            holding anything else is refused). Defaults to False.
        tensorrt_version (str): the TensorRT version of the server (tensorrt backend): engines of another version
            are refused. Defaults to None (not checked; the summary says which version the server needs).

    Returns:
        RepositoryReport: model names → config paths, per-branch max batch, notes.

    Raises:
        ModelDirError: bad model directory, one the backend cannot serve, missing engines. EngineError: engines
        Triton cannot load (see :func:`check_engines`). ServingError: bad options or prefix, non-empty ``out``
        (with ``overwrite``: one that is not a repository siamtrt wrote), an ``out`` that is, contains or lies
        inside the model (or engine) directory.
    """
    _check_options(backend, max_batch, queue_delay_us, instances, threads, idle_seconds)
    _check_prefix(prefix)
    md = ModelDir.open(model_dir)
    check_target(md, f"triton_{backend}")
    out = Path(out)
    engine_dir = md.path if engine_dir is None else Path(engine_dir)
    _check_out_place(out, {"--model": md.path, **({"--engine": engine_dir} if backend == "tensorrt" else {})})
    check_replaceable(out, overwrite=overwrite, flag="--overwrite", what="--out", kind="Triton repository",
                      recognise=lambda p: siamtrt_repository_models(p) is not None, strays=_strays, error=ServingError,
                      layout=f"a written repository holds only its model folders, the tracker's with 1/{META_FILE}")
    notes: List[str] = []
    sides = check_engines(md, engine_dir, tensorrt_version) if backend == "tensorrt" else {}
    if sides and tensorrt_version is None:
        notes.append(f"the engines need TensorRT {sides['search']['tensorrt'].get('version')} in the server (its "
                     "release notes list it; pass --tensorrt-version to have it checked)")
    if backend == "tensorrt" and md.xcorr == "plugin":
        notes.append("the engines use the siamtrt DepthwiseXCorr plugin: start tritonserver with the plugin library "
                     "loaded (LD_PRELOAD=libsiamtrt_dwxcorr.so or --backend-config=tensorrt,plugins=PATH)")
    if not md.dynamic_batch:
        notes.append("the model directory was exported with --batch 1: Triton cannot batch streams "
                     "(export with --batch dynamic for dynamic batching)")
    branches = _branch_models(md, backend, sides, max_batch, notes)
    names = {"template": f"{prefix}_template", "search": f"{prefix}_search", "tracker": f"{prefix}_tracker"}
    settings = dict(queue_delay_us=queue_delay_us, instances=instances, threads=threads)
    with staged_dir(out, overwrite=True) as stage:
        for branch, (ins, outs, mb) in branches.items():
            _write_branch(stage / names[branch], md, branch, backend, engine_dir, ins, outs, mb, settings)
        _write_tracker(stage / names["tracker"], md, branches, names, max_batch, queue_delay_us, idle_seconds)
    models = {n: out / n / "config.pbtxt" for n in names.values()}
    LOG.info("Triton: wrote %s (%s)", out, backend)
    return RepositoryReport(out=out, backend=backend, models=models,
                            max_batch={b: mb for b, (_, _, mb) in branches.items()}, notes=notes)


def _write_branch(mdir: Path, md: ModelDir, branch: str, backend: str, engine_dir: Path, ins, outs, mb: int,
                  settings: Dict[str, int]) -> None:
    vdir = mdir / "1"
    vdir.mkdir(parents=True)
    src = md.engine(branch, engine_dir) if backend == "tensorrt" else md.onnx(branch)
    shutil.copyfile(src, vdir / VERSION_FILES[backend])
    if backend == "python":
        shutil.copyfile(MODELS_DIR / "branch_model.py", vdir / "model.py")
        shutil.copyfile(MODELS_DIR / "pb_io.py", vdir / "pb_io.py")
    (mdir / "config.pbtxt").write_text(branch_config(mdir.name, backend, ins, outs, mb, dynamic=branch == "search",
                                                     **settings))


def _write_tracker(tdir: Path, md: ModelDir, branches, names: Dict[str, str], max_batch: int, queue_delay_us: int,
                   idle_seconds: float) -> None:
    (tdir / "1").mkdir(parents=True)
    shutil.copyfile(MODELS_DIR / "tracker_model.py", tdir / "1" / "model.py")
    io = {b: {"inputs": {s.name: [s.numpy_type, list(s.shape)] for s in ins}, "outputs": [s.name for s in outs]}
          for b, (ins, outs, _) in branches.items()}
    (tdir / "1" / META_FILE).write_text(json.dumps(
        {"template_meta": md.template_meta, "search_meta": md.meta, "io": io, "models": names,
         "source": str(md.path.resolve()), "max_batch": max(1, branches["search"][2])}, indent=1, sort_keys=True))
    (tdir / "config.pbtxt").write_text(tracker_config(names["tracker"], max_batch, queue_delay_us, idle_seconds))


def parse_config(path: Union[str, Path]):
    """Parse a ``config.pbtxt`` with Triton's own ModelConfig protobuf schema (shipped in tritonclient).

    Raises:
        ServingError: tritonclient missing, or the text does not parse as a ModelConfig.
    """
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise ServingError("tritonclient[grpc] is needed to parse config.pbtxt", evidence=repr(e),
                           fix='pip install -e ".[serving]"') from None
    cfg = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(Path(path).read_text(), cfg)
    except text_format.ParseError as e:
        raise ServingError(f"{path} is not a valid Triton ModelConfig", evidence=str(e)) from None
    return cfg


__all__ = ["TRITON_BACKENDS", "RepositoryReport", "ServingError", "TensorSpec", "branch_config", "check_engines",
           "graph_specs", "parse_config", "siamtrt_repository_models", "tracker_config", "write_repository"]
