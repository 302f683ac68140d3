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
  (full TensorRT engines; TensorRT-RTX engines do not run in Triton's TensorRT backend).

Every shape, dtype and name in ``config.pbtxt`` is read from the ONNX graphs and the siamtrt metadata; the tracker
model is always Python (it holds per-sequence state and runs :class:`siamtrt.runtime.Tracker`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import ModelDirError, SiamtrtError
from ..metadata import SEARCH_OUTPUTS
from ..modeldir import SEARCH_ONNX, TEMPLATE_ONNX
from ..modeldir import ModelDir

LOG = logging.getLogger(__name__)

TRITON_BACKENDS = ("python", "onnxruntime", "tensorrt")
MODELS_DIR = Path(__file__).resolve().parent / "models"
META_FILE = "siamtrt_model.json"

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
    max_batch: int
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Triton: wrote {self.out} ({self.backend} backend, search max batch {self.max_batch})"]
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
        text += (f'parameters: {{ key: "onnx_file", value: {{ string_value: "model.onnx" }} }}\n'
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


def _max_batch_from_sidecar(model_dir: Path, branch: str, default: int) -> int:
    side = model_dir / f"{branch}.engine.json"
    if not side.is_file():
        return default
    b = json.loads(side.read_text()).get("profile", {}).get("batch", {})
    return int(b.get("fixed") or b.get("max") or default)


def write_repository(model_dir: Union[str, Path], out: Union[str, Path], backend: str = "python",
                     engine_dir: Optional[Union[str, Path]] = None, prefix: str = "siamtrt", max_batch: int = 8,
                     queue_delay_us: int = 2000, instances: int = 1, threads: int = 1,
                     idle_seconds: float = 60.0, overwrite: bool = False) -> RepositoryReport:
    """Write the Triton model repository for ``model_dir`` into ``out``.

    Args:
        model_dir (str | Path): siamtrt model directory (template.onnx, search.onnx).
        out (str | Path): repository folder (created; must be empty unless ``overwrite``).
        backend (str): "python", "onnxruntime" or "tensorrt". Defaults to "python".
        engine_dir (str | Path): where template.engine / search.engine are (tensorrt). Defaults to model_dir.
        prefix (str): model name prefix. Defaults to "siamtrt".
        max_batch (int): search/template ``max_batch_size`` and streams per tracker batch. Defaults to 8.
        queue_delay_us (int): dynamic/sequence batcher queue delay. Defaults to 2000.
        instances (int): branch model instances. Defaults to 1.
        threads (int): ONNX Runtime intra-op threads per branch instance. Defaults to 1.
        idle_seconds (float): a sequence idle this long is released. Defaults to 60.
        overwrite (bool): replace an existing repository. Defaults to False.

    Returns:
        RepositoryReport: model names → config paths, notes.

    Raises:
        ModelDirError: bad model directory, missing engines. ServingError: bad options or non-empty ``out``.
    """
    model_dir = Path(model_dir)
    out = Path(out)
    if backend not in TRITON_BACKENDS:
        raise ServingError(f"unknown Triton backend '{backend}'", evidence=f"valid: {', '.join(TRITON_BACKENDS)}",
                           fix="--backend python (any tritonserver with the Python backend)")
    if max_batch < 1:
        raise ServingError(f"max_batch must be >= 1, got {max_batch}")
    md = ModelDir.open(model_dir)
    tmeta, smeta = md.template_meta, md.meta
    engine_dir = model_dir if engine_dir is None else Path(engine_dir)
    if backend == "tensorrt":
        missing = [f for f in ("template.engine", "search.engine") if not (engine_dir / f).is_file()]
        if missing:
            raise ModelDirError(f"{engine_dir} lacks {missing} for the tensorrt backend",
                                fix=f"python export/build_engine.py --model {model_dir}  (full TensorRT, on the "
                                    "serving GPU), or --backend python / onnxruntime")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ServingError(f"{out} exists and is not empty", fix="choose a new --out or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    notes: List[str] = []
    fixed = smeta.get("batch") != "dynamic"
    names = {"template": f"{prefix}_template", "search": f"{prefix}_search", "tracker": f"{prefix}_tracker"}
    io: Dict[str, Dict[str, Any]] = {}
    models: Dict[str, Path] = {}
    for branch, onnx_name in (("template", TEMPLATE_ONNX), ("search", SEARCH_ONNX)):
        ins, outs = graph_specs(model_dir / onnx_name)
        if branch == "search":
            order = {n: i for i, n in enumerate(SEARCH_OUTPUTS)}
            outs = sorted(outs, key=lambda s: order.get(s.name, 99))
        io[branch] = {"inputs": {s.name: [s.numpy_type, list(s.shape)] for s in ins},
                      "outputs": [s.name for s in outs]}
        mb = 0 if fixed else max_batch
        if backend == "tensorrt" and not fixed:
            mb = _max_batch_from_sidecar(engine_dir, branch, max_batch)
            if mb < max_batch:
                notes.append(f"{branch}.engine's profile allows batch <= {mb}: max_batch_size {mb}")
        mdir = out / names[branch]
        vdir = mdir / "1"
        vdir.mkdir(parents=True)
        if backend == "tensorrt":
            shutil.copyfile(engine_dir / f"{branch}.engine", vdir / "model.plan")
            if (smeta.get("xcorr") == "plugin"):
                notes.append("the engines use the siamtrt DepthwiseXCorr plugin: start tritonserver with the plugin "
                             "library loaded (LD_PRELOAD=libsiamtrt_dwxcorr.so or --backend-config=tensorrt,"
                             "plugins=PATH)")
        else:
            shutil.copyfile(model_dir / onnx_name, vdir / "model.onnx")
            if backend == "python":
                shutil.copyfile(MODELS_DIR / "branch_model.py", vdir / "model.py")
                shutil.copyfile(MODELS_DIR / "pb_io.py", vdir / "pb_io.py")
        cfg = branch_config(names[branch], backend, ins, outs, mb, dynamic=branch == "search",
                            queue_delay_us=queue_delay_us, instances=instances, threads=threads)
        (mdir / "config.pbtxt").write_text(cfg)
        models[names[branch]] = mdir / "config.pbtxt"
    if fixed:
        notes.append("the model directory was exported with --batch 1: Triton cannot batch streams "
                     "(export with --batch dynamic for dynamic batching)")

    tdir = out / names["tracker"]
    (tdir / "1").mkdir(parents=True)
    shutil.copyfile(MODELS_DIR / "tracker_model.py", tdir / "1" / "model.py")
    (tdir / "1" / META_FILE).write_text(json.dumps(
        {"template_meta": tmeta, "search_meta": smeta, "io": io, "models": names, "source": str(model_dir.resolve()),
         "max_batch": 1 if fixed else max_batch}, indent=1, sort_keys=True))
    (tdir / "config.pbtxt").write_text(tracker_config(names["tracker"], max_batch, queue_delay_us, idle_seconds))
    models[names["tracker"]] = tdir / "config.pbtxt"
    report = RepositoryReport(out=out, backend=backend, models=models, max_batch=0 if fixed else max_batch,
                              notes=notes)
    LOG.info("Triton: wrote %s (%s)", out, backend)
    return report


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


__all__ = ["TRITON_BACKENDS", "RepositoryReport", "ServingError", "TensorSpec", "branch_config", "graph_specs",
           "parse_config", "tracker_config", "write_repository"]
