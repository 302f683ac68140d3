"""The model directory, the one contract every stage reads and writes (torch-free: a Jetson imports it).

This module owns every file name a model directory holds (ONNX branches, engines, their sidecars, calibration
caches), reads both branches' metadata once, migrates older directories, cross-checks the two branches and turns
the result into one typed, frozen record (:class:`ModelDir`). Export, calibration, engine building, the runtime,
serving, batch, benchmarks and every command read a directory through :meth:`ModelDir.open` and nothing else.

It also holds the capability table (:data:`TARGETS`): which precision, correlation form and batch each deployment
target accepts, so quantize, build_engine, to_triton and the OpenCV export consult one table instead of deciding in
their CLIs. A new target is one :class:`Target` entry here plus its own module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from . import __version__
from .config import FLAVOURS, AnchorConfig, TrackConfig
from .errors import ConfigError, ModelDirError, folder_listing
from .metadata import (PRECISIONS, REQUIRED_KEYS, export_command, file_sha256, read_onnx_metadata,
                       untrained_warning, weights_kind, weights_line)

# --------------------------------------------------------------------------------------------------- file names
BRANCHES = ("template", "search")
ONNX_FILES = {"template": "template.onnx", "search": "search.onnx"}
TEMPLATE_ONNX, SEARCH_ONNX = ONNX_FILES["template"], ONNX_FILES["search"]
ENGINE_FILES = {"template": "template.engine", "search": "search.engine"}
SIDECAR_SUFFIX = ".json"  # DIR/search.engine → DIR/search.engine.json
TRT_CACHE_FILES = {"template": "template.calib.cache", "search": "search.calib.cache"}
#: file in a benchmarks' cached export naming what it was exported from (siamtrt.benchmarks.variants.cache_key)
CACHE_STAMP = "bench-cache.json"
#: the torch reference's weights of a cached random-weight export (rebuilding them costs ~20 s on 2 cores)
REFERENCE_WEIGHTS = "torch-reference.pt"


def onnx_digest(model_dir: Union[str, Path]) -> str:
    """The identity of a directory's ONNX files (sha256 prefixes of template.onnx and search.onnx): what is cached
    from a directory (derived copies, results) records it and is reused only while it matches."""
    d = Path(model_dir)
    return ":".join(file_sha256(d / ONNX_FILES[b])[:16] for b in BRANCHES)


# Keys both branches must agree on.
SHARED_KEYS = ("arch", "family", "exemplar_size", "instance_size", "score_size", "anchor", "track",
               "template_outputs", "xcorr", "batch", "checkpoint_sha256")
#: ``quantization`` entries each branch records for itself; the rest says how the directory was derived (source,
#: calibration file, library, method, fidelity) and is the same in both branches of one quantize run
PER_BRANCH_QUANTIZATION = ("samples", "excluded_nodes", "range_methods", "source_sha256", "float_mac_share",
                           "trt_calibration_cache")
REEXPORT = "re-export the directory: " + export_command()
XCORR_FORMS = ("conv", "plugin")
BATCH_FORMS = ("dynamic", "1")


def track_command(model_dir: Union[str, Path], backend: str = "") -> str:
    """The "next:" step of a job that wrote ``model_dir``, in the ``siamtrt JOB`` form the README teaches."""
    backend = f" --backend {backend}" if backend else ""
    return f"siamtrt track --model {model_dir}{backend} --video VIDEO --bbox x,y,w,h"


def build_command(model_dir: Union[str, Path], flags: str = "") -> str:
    """The command that builds ``model_dir``'s engines (``flags``: e.g. "--int8"), in the same form: the fixes of
    every missing or stale engine and the rebuild command each sidecar records."""
    return f"siamtrt build --model {model_dir}" + (f" {flags}" if flags else "")


def collect_command(model_dir: Union[str, Path] = "DIR", out: Union[str, Path] = "calib.npz") -> str:
    """The command that collects calibration crops for ``model_dir`` into ``out`` (the fixes of every missing or
    mismatched calibration file)."""
    return f"siamtrt collect --model {model_dir} --video V --bbox x,y,w,h --out {out}"


def triton_command(out: Union[str, Path], flags: str = "") -> str:
    """The command that writes a Triton model repository into ``out`` (``flags``: e.g. "--overwrite")."""
    return f"siamtrt triton --model DIR --out {out}" + (f" {flags}" if flags else "")


def sidecar_path(engine_path: Union[str, Path]) -> Path:
    """``DIR/search.engine`` → ``DIR/search.engine.json`` (the JSON that travels with every engine)."""
    p = Path(engine_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def migrate(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """One branch's metadata in today's form, for directories written by earlier siamtrt versions.

    The only migration so far: ``trained`` (bool) was replaced by ``weights`` (a kind of
    :data:`siamtrt.metadata.WEIGHTS_KINDS`); ``trained`` is dropped once read.
    """
    out = dict(meta)
    out["weights"] = weights_kind(out)
    out.pop("trained", None)
    return out


# ------------------------------------------------------------------------------------------------------- record
@dataclass(frozen=True)
class ModelDir:
    """An exported (or derived) model directory: its path, both branches' metadata and the typed parameters.

    Build it with :meth:`open` (reads the ONNX files) or :meth:`from_metadata` (metadata already at hand, e.g. a
    Triton repository's copy). Attributes are read-only; ``meta`` is the search branch's full metadata dict (what
    backends receive), ``template_meta`` the template branch's.
    """

    path: Path
    template_meta: Dict[str, Any] = field(repr=False)
    meta: Dict[str, Any] = field(repr=False)
    track: TrackConfig
    anchor: AnchorConfig

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path: Union[str, Path], *, require_fp32: bool = False,
             require_conv: bool = False) -> "ModelDir":
        """Read and cross-check a model directory.

        Args:
            path (str | Path): the directory written by ``export/to_onnx.py`` or ``calibration/quantize.py``.
            require_fp32 (bool): refuse a reduced-precision directory (calibration and quantization start from
                FP32). Defaults to False.
            require_conv (bool): refuse a plugin-mode directory (it runs on TensorRT only). Defaults to False.

        Raises:
            ModelDirError: missing directory or files, foreign ONNX, branches from different exports, metadata this
                version cannot interpret, or a violated requirement.
        """
        path = Path(path)
        if not path.is_dir():
            raise ModelDirError(f"model directory {path} does not exist" if not path.exists()
                                else f"{path} is a file, not a model directory",
                                fix="pass the folder written by siamtrt export (it holds "
                                    f"{', '.join(ONNX_FILES.values())})")
        missing = [f for f in ONNX_FILES.values() if not (path / f).is_file()]
        if missing:
            raise ModelDirError(f"model directory {path} lacks {missing}",
                                evidence=folder_listing(path), fix=REEXPORT)
        md = cls.from_metadata(path, read_onnx_metadata(path / ONNX_FILES["template"]),
                               read_onnx_metadata(path / ONNX_FILES["search"]))
        if require_conv and md.xcorr == "plugin":
            raise ModelDirError(f"{path} uses the DepthwiseXCorr TensorRT plugin node, which only TensorRT can run",
                                evidence="metadata xcorr = 'plugin'",
                                fix="use the plugin-free export of the same model (siamtrt export ... "
                                    "--xcorr conv)")
        if require_fp32 and md.precision != "fp32":
            raise ModelDirError(f"{path} is already a reduced-precision directory ({md.precision})",
                                evidence=f"metadata precision = {md.precision!r}",
                                fix="start from the original fp32 export (the one written by export/to_onnx.py)")
        return md

    @classmethod
    def from_metadata(cls, path: Union[str, Path], template_meta: Mapping[str, Any],
                      search_meta: Mapping[str, Any]) -> "ModelDir":
        """Cross-check two branches' metadata (already read) and type it.

        Raises:
            ModelDirError: swapped branches, branches from different exports (or of different precisions or
                quantize runs), unknown family/flavour, a major version mismatch, malformed entries, or a score size
                inconsistent with the sizes and stride.
        """
        path = Path(path)
        tmeta, smeta = migrate(template_meta), migrate(search_meta)
        for meta, want in ((tmeta, "template"), (smeta, "search")):
            missing = [k for k in REQUIRED_KEYS if k not in meta]
            if missing:
                raise ModelDirError(f"{path}: the {want} metadata lacks keys {missing}",
                                    evidence="not written by siamtrt's exporter (or by an older version)",
                                    fix=REEXPORT)
            if meta.get("branch") != want:
                raise ModelDirError(f"{path}: {ONNX_FILES[want]} carries branch = {meta.get('branch')!r} metadata",
                                    evidence="the template and search files are swapped or mislabelled",
                                    fix=REEXPORT)
        diff = [k for k in SHARED_KEYS if tmeta.get(k) != smeta.get(k)]
        if diff:
            raise ModelDirError(f"{path}: template.onnx and search.onnx come from different exports",
                                evidence="; ".join(f"{k}: {tmeta.get(k)!r} vs {smeta.get(k)!r}" for k in diff)[:600],
                                fix=REEXPORT)
        _check_same_derivation(path, tmeta, smeta)
        major = str(smeta.get("version", "")).split(".")[0]
        if major != __version__.split(".")[0]:
            raise ModelDirError(f"{path} was exported by siamtrt {smeta.get('version')}, incompatible with "
                                f"{__version__}", evidence="major versions differ", fix=REEXPORT)
        if smeta.get("family") not in ("pysot", "dasiamrpn"):
            raise ModelDirError(f"{path}: unknown model family {smeta.get('family')!r}",
                                evidence="known: pysot, dasiamrpn", fix=REEXPORT)
        for key, known in (("precision", PRECISIONS), ("xcorr", XCORR_FORMS), ("batch", BATCH_FORMS)):
            if str(smeta.get(key)) not in known:
                raise ModelDirError(f"{path}: unknown {key} {smeta.get(key)!r} in the metadata",
                                    evidence=f"known: {', '.join(known)}", fix=REEXPORT)
        track = _typed(TrackConfig, smeta["track"], "track", path)
        a = smeta["anchor"]
        try:
            anchor = AnchorConfig(stride=int(a["stride"]), ratios=tuple(float(r) for r in a["ratios"]),
                                  scales=tuple(float(s) for s in a["scales"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelDirError(f"{path}: metadata 'anchor' is malformed", evidence=repr(e), fix=REEXPORT) from None
        if track.flavour not in FLAVOURS:
            raise ModelDirError(f"{path}: unknown tracker flavour {track.flavour!r}", evidence=f"known: {FLAVOURS}",
                                fix=REEXPORT)
        size_keys = ("score_size", "exemplar_size", "instance_size")
        bad = {k: smeta[k] for k in size_keys if isinstance(smeta[k], bool) or not isinstance(smeta[k], int)}
        if bad:
            raise ModelDirError(f"{path}: metadata sizes are malformed", evidence=f"not whole numbers: {bad}"[:600],
                                fix=REEXPORT)
        expect = track.score_size(anchor.stride)
        if smeta["score_size"] != expect or smeta["exemplar_size"] != track.exemplar_size \
                or smeta["instance_size"] != track.instance_size:
            raise ModelDirError(f"{path}: metadata sizes are inconsistent",
                                evidence=f"score_size {smeta['score_size']} (expected {expect} from instance "
                                         f"{track.instance_size}, exemplar {track.exemplar_size}, stride "
                                         f"{anchor.stride}, base {track.base_size}); exemplar_size "
                                         f"{smeta['exemplar_size']}, instance_size {smeta['instance_size']}",
                                fix=REEXPORT)
        if not smeta.get("template_outputs"):
            raise ModelDirError(f"{path}: metadata lists no template_outputs", fix=REEXPORT)
        return cls(path=path, template_meta=tmeta, meta=smeta, track=track, anchor=anchor)

    # ---------------------------------------------------------------------------------------------- metadata
    def branch_meta(self, branch: str) -> Dict[str, Any]:
        """The full metadata dict of one branch ("template" or "search")."""
        return self.template_meta if _branch(branch) == "template" else self.meta

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])

    @property
    def family(self) -> str:
        return str(self.meta["family"])

    @property
    def flavour(self) -> str:
        """Tracker conventions: "pysot" (SiamRPNTracker) or "dasiamrpn" (run_SiamRPN.py)."""
        return self.track.flavour

    @property
    def precision(self) -> str:
        """"fp32" | "fp16" | "int8" (the search branch's; a derived directory changes both)."""
        return str(self.meta["precision"])

    @property
    def xcorr(self) -> str:
        """"conv" (grouped Conv, runs everywhere) or "plugin" (siamtrt::DepthwiseXCorr node, TensorRT only)."""
        return str(self.meta["xcorr"])

    @property
    def batch(self) -> str:
        """"dynamic" (N targets per call) or "1" (pysot's own form: the runtime splits batches)."""
        return str(self.meta["batch"])

    @property
    def dynamic_batch(self) -> bool:
        return self.batch != "1"

    @property
    def weights(self) -> str:
        """Weights kind: "checkpoint", "random-realistic" or "random-matching"."""
        return str(self.meta["weights"])

    @property
    def weights_line(self) -> str:
        """One line saying what the weights are (kind plus checkpoint sha256 or seed), for every report."""
        return weights_line(self.meta)

    @property
    def untrained_warning(self) -> str:
        """The loud one-line warning for random weights ("" for a checkpoint)."""
        return untrained_warning(self.meta)

    @property
    def checkpoint_sha256(self) -> str:
        return str(self.meta["checkpoint_sha256"])

    @property
    def template_outputs(self) -> Tuple[str, ...]:
        """Names of the per-target kernels (template outputs = search inputs besides ``search``)."""
        return tuple(self.meta["template_outputs"])

    @property
    def exemplar_size(self) -> int:
        return self.track.exemplar_size

    @property
    def instance_size(self) -> int:
        return self.track.instance_size

    @property
    def instance_sizes(self) -> Tuple[int, ...]:
        """Every search size the graph accepts (local sizes, then the long-term lost size if exported)."""
        return self.track.instance_sizes

    @property
    def alt_instance_size(self) -> Optional[int]:
        """The adaptive model's small-target search size (SiamRPNBIG: 287), else None."""
        return self.track.adaptive_instance_size

    @property
    def score_size(self) -> int:
        return self.track.score_size(self.anchor.stride)

    @property
    def quantization(self) -> Optional[Dict[str, Any]]:
        """How a derived directory was made (``quantization`` metadata), None for an export."""
        q = self.meta.get("quantization")
        return dict(q) if isinstance(q, dict) else None

    # ------------------------------------------------------------------------------------------------- files
    def onnx(self, branch: str) -> Path:
        return self.path / ONNX_FILES[_branch(branch)]

    def engine(self, branch: str, engine_dir: Optional[Union[str, Path]] = None) -> Path:
        """``<engine_dir or DIR>/<branch>.engine``."""
        return Path(engine_dir or self.path) / ENGINE_FILES[_branch(branch)]

    def sidecar(self, branch: str, engine_dir: Optional[Union[str, Path]] = None) -> Path:
        return sidecar_path(self.engine(branch, engine_dir))

    def trt_cache(self, branch: str) -> Path:
        """TensorRT implicit-INT8 calibration cache of one branch."""
        return self.path / TRT_CACHE_FILES[_branch(branch)]

    def missing_engines(self, engine_dir: Optional[Union[str, Path]] = None) -> Tuple[str, ...]:
        return tuple(ENGINE_FILES[b] for b in BRANCHES if not self.engine(b, engine_dir).is_file())

    def sha256(self, branch: str) -> str:
        """sha256 of one branch's ONNX file."""
        return file_sha256(self.onnx(branch))

    def describe(self) -> str:
        """One line: path, architecture, precision, correlation form, batch and weights."""
        return (f"{self.path} [{self.arch}, {self.precision}, xcorr {self.xcorr}, batch {self.batch}, "
                f"weights {self.weights_line}]")


def _branch(branch: str) -> str:
    if branch not in BRANCHES:
        raise ModelDirError(f"unknown branch {branch!r}", evidence=f"valid: {', '.join(BRANCHES)}")
    return branch


def _check_same_derivation(path: Path, tmeta: Dict[str, Any], smeta: Dict[str, Any]) -> None:
    """Both branches have one precision and, for a derived directory, one ``quantization`` record (less its
    per-branch entries, :data:`PER_BRANCH_QUANTIZATION`): a branch copied from another directory (an int8
    search.onnx beside an fp32 template.onnx, or branches of two quantize runs) is refused."""
    fix = (f"copy template.onnx and search.onnx from the same directory, or write the directory again: "
           f"siamtrt quantize --model FP32_DIR ... --out {path} for a derived one, else {REEXPORT}")
    tp, sp = tmeta.get("precision"), smeta.get("precision")
    if tp != sp:
        raise ModelDirError(f"{path}: template.onnx is {tp} but search.onnx is {sp}: the branches come from "
                            "different exports or quantize runs",
                            evidence=f"metadata precision: template {tp!r} vs search {sp!r}; quantization: "
                                     f"template {_derivation_text(tmeta)}, search {_derivation_text(smeta)}",
                            fix=fix)
    tq, sq = tmeta.get("quantization"), smeta.get("quantization")
    if tq is None and sq is None:
        return
    if not isinstance(tq, dict) or not isinstance(sq, dict):
        raise ModelDirError(f"{path}: only one branch records how it was derived (its quantization metadata)",
                            evidence=f"template {_derivation_text(tmeta)}; search {_derivation_text(smeta)}",
                            fix=fix)
    diff = sorted(k for k in set(tq) | set(sq) if k not in PER_BRANCH_QUANTIZATION and tq.get(k) != sq.get(k))
    if diff:
        raise ModelDirError(f"{path}: template.onnx and search.onnx come from different {sp} derivations "
                            "(quantize runs)",
                            evidence=(f"their quantization metadata differs in {', '.join(diff)}: "
                                      + "; ".join(f"{k} {_short(tq.get(k))} vs {_short(sq.get(k))}"
                                                  for k in diff))[:600],
                            fix=fix)


def _short(value: Any, n: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n - 1] + "…"


def _derivation_text(meta: Dict[str, Any]) -> str:
    """How one branch was made, for messages: "none (an export)" or library, target and source directory."""
    q = meta.get("quantization")
    if not isinstance(q, dict):
        return "none (an export)" if q is None else repr(q)[:80]
    return (f"{q.get('library')} target {q.get('target', 'any')} from {q.get('source_dir')}"
            + (f" calib {q.get('calib_file')}" if q.get("calib_file") else ""))


def _typed(cls, values: Any, where: str, path: Path):
    if not isinstance(values, dict):
        raise ModelDirError(f"{path}: metadata '{where}' is not a mapping", evidence=repr(values)[:200], fix=REEXPORT)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ModelDirError(f"{path}: metadata '{where}' has keys this siamtrt {__version__} does not know: {unknown}",
                            evidence="written by a newer siamtrt?", fix="upgrade siamtrt or " + REEXPORT)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ModelDirError(f"{path}: metadata '{where}' is malformed", evidence=str(e)[:300], fix=REEXPORT) from None
    except ConfigError as e:  # TrackConfig's own consistency checks
        raise ModelDirError(f"{path}: metadata '{where}' is inconsistent", evidence=str(e)[:300],
                            fix=REEXPORT) from None


# --------------------------------------------------------------------------------------------- capability table
@dataclass(frozen=True)
class Target:
    """What one deployment target accepts from a model directory.

    Attributes:
        name (str): registry name. what (str): one line for messages.
        precisions (tuple): accepted ``precision`` values. xcorr (tuple): accepted correlation forms.
        batch (tuple): accepted batch forms. families (tuple): accepted model families (None: all).
        fix (str): what to do when a directory is refused (``{dir}`` is replaced by its path).
        engine_packages (tuple): TensorRT packages whose engines the target loads (None: it takes no engines).
    """

    name: str
    what: str
    precisions: Tuple[str, ...] = PRECISIONS
    xcorr: Tuple[str, ...] = ("conv",)
    batch: Tuple[str, ...] = BATCH_FORMS
    families: Optional[Tuple[str, ...]] = None
    fix: str = "export a directory this target accepts"
    engine_packages: Optional[Tuple[str, ...]] = None

    def refusal(self, md: ModelDir) -> Optional[str]:
        """Why ``md`` cannot go to this target (one clause), or None."""
        if md.precision not in self.precisions:
            return f"precision {md.precision} (it takes {', '.join(self.precisions)})"
        if md.xcorr not in self.xcorr:
            return f"xcorr {md.xcorr} (it takes {', '.join(self.xcorr)})"
        if md.batch not in self.batch:
            return f"batch {md.batch} (it takes {', '.join(self.batch)})"
        if self.families is not None and md.family not in self.families:
            return f"family {md.family} (it takes {', '.join(self.families)})"
        return None


#: how to get a directory every plugin-free target takes
PLUGIN_FREE_FIX = "export the plugin-free form (siamtrt export ... --xcorr conv)"

TARGETS: Dict[str, Target] = {t.name: t for t in (
    Target("onnxruntime", "ONNX Runtime (CPU / CUDA)",
           fix=PLUGIN_FREE_FIX),
    Target("openvino", "OpenVINO (CPU)",
           fix=PLUGIN_FREE_FIX),
    Target("tensorrt", "TensorRT (JetPack, desktop)", xcorr=XCORR_FORMS,
           fix="re-export with siamtrt export", engine_packages=("tensorrt",)),
    Target("tensorrt_rtx", "TensorRT-RTX (no plugin layers)",
           fix="build from the conv-mode export (siamtrt export ... --xcorr conv)",
           engine_packages=("tensorrt_rtx",)),
    # Triton model repositories (export/to_triton.py --backend ...): the Python backend runs ONNX Runtime, the
    # TensorRT backend links full TensorRT (it cannot load TensorRT-RTX engines)
    Target("triton_python", "Triton's Python backend (ONNX Runtime inside)",
           fix=PLUGIN_FREE_FIX + ", or --backend tensorrt"),
    Target("triton_onnxruntime", "Triton's ONNX Runtime backend",
           fix=PLUGIN_FREE_FIX + ", or --backend tensorrt"),
    Target("triton_tensorrt", "Triton's TensorRT backend (full TensorRT)", xcorr=XCORR_FORMS,
           fix="re-export with siamtrt export", engine_packages=("tensorrt",)),
    Target("opencv", "OpenCV's cv2.TrackerDaSiamRPN", precisions=("fp32",), families=("dasiamrpn",),
           fix="use the fp32 conv-mode export of a DaSiamRPN vot/otb checkpoint (siamtrt export --config "
               "SiamRPNvot --checkpoint SiamRPNVOT.model --out DIR), or no directory: siamtrt export --target opencv "
               "--config SiamRPNvot --checkpoint SiamRPNVOT.model"),
)}


def check_target(md: ModelDir, target: str) -> Target:
    """The :class:`Target` ``target``, after checking that ``md`` suits it.

    Raises:
        ModelDirError: unknown target, or a directory the target does not accept (what, evidence, fix).
    """
    t = TARGETS.get(target)
    if t is None:
        raise ModelDirError(f"unknown deployment target {target!r}", evidence=f"known: {', '.join(TARGETS)}")
    why = t.refusal(md)
    if why:
        raise ModelDirError(f"{md.path} cannot go to {t.what}: {why}", evidence=md.describe(),
                            fix=t.fix.replace("{dir}", str(md.path)))
    return t


__all__ = ["BATCH_FORMS", "BRANCHES", "ENGINE_FILES", "ModelDir", "ONNX_FILES", "PER_BRANCH_QUANTIZATION", "REEXPORT",
           "SEARCH_ONNX", "SHARED_KEYS", "SIDECAR_SUFFIX", "TARGETS", "TEMPLATE_ONNX", "TRT_CACHE_FILES", "Target",
           "XCORR_FORMS", "build_command", "check_target", "collect_command", "migrate", "sidecar_path",
           "track_command", "triton_command"]
