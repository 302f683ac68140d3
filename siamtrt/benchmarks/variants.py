"""What the benchmarks compare: (backend, precision, model directory) variants, and where their models come from.

Shared by ``fps`` and ``accuracy``. A model directory comes from ``--model DIR`` or is exported on demand from
``--config NAME [--checkpoint model.pth]`` into a cache folder (``models/<config>-random`` for seeded random weights,
seed 0, ``models/<config>-random-seed<N>`` for other seeds, ``models/<config>-<sha8>`` for a checkpoint). Each cached
export carries a stamp (:data:`CACHE_STAMP`) with its key: a hash of the config, seed, random-heads kind (or the
checkpoint's sha256), the siamtrt version and the export code's source; a directory whose key differs is exported
again. Precision is a property of a model directory (its metadata): FP16
variants of a cached export are derived with ``siamtrt.calibration.fp16.convert_fp16``; INT8 needs calibration data,
so it is taken from ``--model DIR`` of an int8 directory (``calibration/quantize.py``). Nothing is silently
substituted: a requested combination that cannot be produced raises with the command that produces it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..config import DEFAULT_CONFIG, get_config
from ..locations import MODELS_DIR, default_model_dir, derived_model_dir
from ..errors import BackendError, CheckpointError, ModelDirError
from ..metadata import PRECISIONS
from ..modeldir import CACHE_STAMP, REFERENCE_WEIGHTS, SEARCH_ONNX, TEMPLATE_ONNX, onnx_digest

LOG = logging.getLogger(__name__)

REFERENCE_BACKEND = "torch"
#: backend words the benchmarks accept besides the registry's names: the torch reference, "auto" (what the runtime
#: picks for a directory on this machine) and "all" (every registered backend that can run it here)
BACKEND_WORDS = (REFERENCE_BACKEND, "auto", "all")


def backend_choices() -> Tuple[str, ...]:
    """Every name ``--backend`` accepts: the runtime registry's, then :data:`BACKEND_WORDS`."""
    from ..runtime.backends import BACKENDS

    return tuple(BACKENDS) + BACKEND_WORDS


def backends_for(words: Sequence[str], model_dir: Path) -> Tuple[List[str], List[Dict[str, str]]]:
    """Concrete backend names for ``model_dir`` (``auto`` resolved as the runtime resolves it, ``all`` expanded to
    every available registered backend), and the backends ``all`` left out with the reason."""
    from ..runtime.backends import BACKENDS, choose_backend

    names: List[str] = []
    left_out: List[Dict[str, str]] = []
    for w in words:
        if w == "auto":
            names.append(choose_backend("auto", model_dir)[0])
        elif w == "all":
            for b in BACKENDS:
                why = unavailable_reason(b, model_dir)
                if why:
                    left_out.append({"label": f"{b} ({model_dir.name})", "reason": why})
                else:
                    names.append(b)
        else:
            names.append(w)
    return list(dict.fromkeys(names)), left_out


def unavailable_reason(backend: str, model_dir: Path) -> Optional[str]:
    """Why ``backend`` cannot run ``model_dir`` on this machine (not installed, no GPU, no engines), or None."""
    from ..runtime.backends import backend_class

    try:
        return backend_class(backend).unavailable_reason(model_dir)
    except BackendError as e:
        return e.what


def check_available(variants: Sequence["Variant"], needed: Callable[["Variant"], bool] = lambda v: True) -> None:
    """Raise BackendError, before any variant runs (bench, --mode, accuracy), for the first whose backend cannot run
    its directory here (the torch reference aside; it was refused only after the others ran) and is ``needed``
    (asked only then; accuracy: False where saved results cover it)."""
    for v in variants:
        why = None if v.is_reference else unavailable_reason(v.backend, v.model_dir)
        if why and needed(v):
            raise BackendError(f"backend {v.backend} cannot run {v.model_dir} here", evidence=why,
                               fix="choose a backend that runs here (--backend auto picks one), or build the "
                                   "missing engines / install the missing library")


DEFAULT_CACHE = MODELS_DIR


@dataclass
class Variant:
    """One thing to benchmark: a backend over a model directory (whose metadata fixes the precision)."""

    backend: str
    model_dir: Path
    meta: Dict[str, Any]
    checkpoint: Optional[Path] = None
    options: Dict[str, Any] = field(default_factory=dict)
    random_fallback: bool = False  # torch only: timing with random weights when the checkpoint is absent
    float_hint: Optional[str] = None  # the float-layer precision the backend ran with, when not f32 (OpenVINO bf16)

    @property
    def precision(self) -> str:
        # the torch reference always computes in float32, whatever the directory's ONNX precision
        return "fp32" if self.backend == REFERENCE_BACKEND else str(self.meta.get("precision", "fp32"))

    @property
    def label(self) -> str:
        """:attr:`engine_label` with the float-layer hint when it is not f32 (``openvino-int8(openvino)[bf16]``)."""
        return self.engine_label + (f"[{self.float_hint}]" if self.float_hint else "")

    @property
    def engine_label(self) -> str:
        """``backend-precision``, with the Q/DQ target of an int8 directory (``openvino-int8(openvino)``): the same
        backend runs directories quantized for different engines differently."""
        target = (self.meta.get("quantization") or {}).get("target") if self.precision == "int8" else None
        return f"{self.backend}-{self.precision}" + (f"({target})" if target else "")

    @property
    def arch(self) -> str:
        return str(self.meta.get("arch"))

    @property
    def weights_key(self) -> str:
        """Identifies the network weights: variants with equal keys compare against the same torch reference."""
        return f"{self.arch}:{self.meta.get('checkpoint_sha256')}"

    @property
    def weights(self) -> str:
        """"checkpoint", "random-realistic" or "random-matching" (:data:`siamtrt.metadata.WEIGHTS_KINDS`)."""
        from ..metadata import weights_kind

        return weights_kind(self.meta)

    @property
    def weights_line(self) -> str:
        """What the weights are, with the checkpoint sha256 (or seed), for report headers."""
        from ..metadata import weights_line

        return weights_line(self.meta)

    @property
    def trained(self) -> bool:
        """Weights loaded from a checkpoint file."""
        return self.weights == "checkpoint"

    @property
    def is_reference(self) -> bool:
        return self.backend == REFERENCE_BACKEND

    def describe(self) -> Dict[str, Any]:
        return {"label": self.label, "backend": self.backend, "precision": self.precision,
                "qdq_target": (self.meta.get("quantization") or {}).get("target"), "float_hint": self.float_hint,
                "model_dir": str(self.model_dir), "arch": self.arch, "trained": self.trained,
                "weights_kind": self.weights,
                "checkpoint_sha256": self.meta.get("checkpoint_sha256"), "xcorr": self.meta.get("xcorr"),
                "batch": self.meta.get("batch")}

    def make_tracker(self, threads: Optional[int] = None):
        """A runtime Tracker for this variant (torch: the same Tracker over the PyTorch reference backend)."""
        from ..runtime import Tracker
        from ..modeldir import ModelDir

        if self.backend == REFERENCE_BACKEND:
            from .torch_backend import TorchBackend

            info = ModelDir.open(self.model_dir)
            stamp = read_cache_stamp(self.model_dir)  # a cached export: its random weights are cached beside it
            cache = (self.model_dir / REFERENCE_WEIGHTS, stamp["key"]) if stamp and stamp.get("key") else None
            be = TorchBackend.from_model_dir(self.model_dir, info.meta, checkpoint=self.checkpoint,
                                             random_fallback=self.random_fallback, threads=threads,
                                             weights_cache=cache, **self.options)
            return Tracker(be, info)
        from ..runtime.backends import accepted_options

        # generic options, filtered by what this backend declares (no backend named here)
        opts = accepted_options(self.backend, dict({"threads": threads}, **self.options))
        return Tracker.from_model_dir(self.model_dir, backend=self.backend, **opts)


def read_dir_meta(model_dir: Union[str, Path]) -> Dict[str, Any]:
    """The search-branch metadata of a model directory (checked by the runtime's reader)."""
    from ..modeldir import ModelDir

    return dict(ModelDir.open(model_dir).meta)


def _export_code_hash() -> str:
    """sha256 of the export package's sources (random weights and graphs change when they do)."""
    import hashlib

    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1] / "export"
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def cache_key(config: str, checkpoint: Optional[Union[str, Path]] = None, seed: int = 0,
              random_heads: str = "realistic") -> Dict[str, Any]:
    """What a cached export was made from: config (its full contents), checkpoint sha256 or seed and random-heads
    kind, siamtrt version and export-code hash, plus ``key``, a sha256 over all of it."""
    import hashlib
    import json

    from .. import __version__
    from ..metadata import file_sha256

    fields: Dict[str, Any] = {"config": get_config(config).to_dict(), "siamtrt": __version__,
                              "export_code": _export_code_hash()}
    if checkpoint is not None:
        fields["checkpoint_sha256"] = file_sha256(checkpoint)
    else:
        fields.update(seed=int(seed), random_heads=random_heads)
    fields["key"] = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    return fields


def read_cache_stamp(model_dir: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The stamp of a cached export (None when absent or unreadable)."""
    import json

    try:
        return json.loads((Path(model_dir) / CACHE_STAMP).read_text())
    except (OSError, ValueError):
        return None


def write_cache_stamp(model_dir: Union[str, Path], key: Dict[str, Any]) -> None:
    """Stamp a cached export with its :func:`cache_key` and the digest of the ONNX files it describes."""
    import json

    stamp = dict(key, onnx=onnx_digest(model_dir))
    (Path(model_dir) / CACHE_STAMP).write_text(json.dumps(stamp, indent=1, default=str))


def stamp_matches(model_dir: Union[str, Path], key: Dict[str, Any]) -> bool:
    """True when ``model_dir`` holds the export ``key`` describes: the stamp's key and the ONNX files it was written
    for are those there now (an export over the folder, e.g. ``siamtrt export --force``, changed them)."""
    d = Path(model_dir)
    stamp = read_cache_stamp(d)
    if not (stamp and stamp.get("key") == key["key"]):
        return False
    if not ((d / TEMPLATE_ONNX).is_file() and (d / SEARCH_ONNX).is_file()):
        return False
    return stamp.get("onnx") == onnx_digest(d)


def cache_dir_for(config: str, checkpoint: Optional[Union[str, Path]], cache_root: Union[str, Path],
                  precision: str = "fp32", seed: int = 0) -> Path:
    return default_model_dir(config, checkpoint, seed=seed, root=cache_root, precision=precision)  # = to_onnx's


def ensure_exported(config: str = DEFAULT_CONFIG, checkpoint: Optional[Union[str, Path]] = None,
                    cache_root: Union[str, Path] = DEFAULT_CACHE, seed: int = 0, progress: bool = True) -> Path:
    """The fp32 model directory of ``config`` in the cache, exported first if it is not there yet.

    Without a checkpoint the weights are seeded random (realistic numerics, untrained; the metadata says so).

    Raises:
        ConfigError / CheckpointError / ExportError: from the exporter.
    """
    import shutil

    out = cache_dir_for(config, checkpoint, cache_root, seed=seed)
    key = cache_key(config, checkpoint, seed)
    if (out / TEMPLATE_ONNX).is_file() and (out / SEARCH_ONNX).is_file():
        stamp = read_cache_stamp(out)
        try:
            read_dir_meta(out)
            if stamp_matches(out, key):
                return out
            LOG.warning("bench: cache %s was exported from %s; exporting again", out,
                        ("other settings or export code" if stamp.get("key") != key["key"] else
                         "these settings, but its ONNX files were replaced since") if stamp else
                        "an unknown source (no stamp)")
        except ModelDirError as e:  # a half-written or stale cache: export again
            LOG.warning("bench: cache %s is unusable (%s); exporting again", out, e.what)
    if out.exists():
        shutil.rmtree(out)  # a stale cache directory of the benchmarks, never a user's --model
    from ..export.onnx import export_model  # torch only when an export is needed

    LOG.warning("bench: exporting %s (%s) into %s — once; later runs reuse it", get_config(config).name,
                f"checkpoint {checkpoint}" if checkpoint else f"SEEDED RANDOM WEIGHTS, seed {seed}", out)
    res = export_model(config, out, checkpoint=checkpoint, seed=seed, progress=progress)
    if checkpoint is None and getattr(res, "model", None) is not None:
        from .torch_backend import save_reference_weights  # the torch reference need not rebuild them (~20 s)

        save_reference_weights(out / REFERENCE_WEIGHTS, key["key"], seed, res.model)
    write_cache_stamp(out, key)
    return out


def ensure_precision(fp32_dir: Path, precision: str) -> Path:
    """A derived directory of ``fp32_dir`` at ``precision`` (fp16 is made on demand; int8 needs calibration data).

    Raises:
        ModelDirError: int8 requested without a quantized directory.
    """
    if precision == "fp32":
        return fp32_dir
    out = derived_model_dir(fp32_dir, precision)
    # derived from these ONNX files: re-derived when they change (the fp32 stamp alone outlived an export over them)
    source = {"derived_from": onnx_digest(fp32_dir)}
    if (out / SEARCH_ONNX).is_file():
        try:
            stamp = read_cache_stamp(out) or {}
            if read_dir_meta(out).get("precision") == precision and stamp.get("derived_from") == source["derived_from"]:
                return out
            LOG.warning("bench: %s was derived from other ONNX files than %s holds now; deriving again", out, fp32_dir)
        except ModelDirError:
            pass
    if precision == "fp16":
        import json
        import shutil

        from ..calibration.fp16 import convert_fp16

        if out.exists():
            shutil.rmtree(out)  # derived from an older export
        LOG.warning("bench: deriving an FP16 copy of %s into %s", fp32_dir, out)
        convert_fp16(fp32_dir, out)
        (out / CACHE_STAMP).write_text(json.dumps(dict(read_cache_stamp(fp32_dir) or {}, **source), indent=1,
                                                  default=str))
        return out
    raise ModelDirError(f"no {precision} model directory for {fp32_dir}",
                        evidence="INT8 needs calibration crops, which the benchmark does not collect on its own",
                        fix=f"siamtrt collect --model {fp32_dir} ... then siamtrt quantize "
                            f"--model {fp32_dir} --precision int8 --out {out}, and pass --model {out}")


def resolve_variants(models: Sequence[Union[str, Path]] = (), config: Optional[str] = None,
                     checkpoint: Optional[Union[str, Path]] = None, backends: Sequence[str] = ("onnxruntime",),
                     precisions: Sequence[str] = (), reference: bool = True,
                     cache_root: Union[str, Path] = DEFAULT_CACHE, seed: int = 0,
                     progress: bool = True, skipped: Optional[List[Dict[str, str]]] = None) -> List[Variant]:
    """Turn CLI choices into variants (reference first).

    Args:
        models (Sequence[str | Path]): model directories; when empty, ``config`` is exported into the cache.
        config (str): built-in config name or pysot yaml. Defaults to siamtrt.config.DEFAULT_CONFIG.
        checkpoint (str | Path): trained weights for ``config`` (and for the torch reference of ``models``).
        backends (Sequence[str]): backends to run on every directory: registry names, "torch" (the reference),
            "auto" (the runtime's choice for the directory) or "all" (every backend that can run it here).
        precisions (Sequence[str]): wanted precisions: with ``models``, a filter that must match every directory;
            with ``config``, the directories to produce. Defaults to the directories' own (fp32 for a config).
        reference (bool): add the torch reference (one per distinct network) even when not listed. Defaults to True.
        progress (bool): progress bar while exporting. Defaults to True.
        skipped (list): receives ``{"label", "reason"}`` for every backend ``all`` left out. Defaults to None.

    Raises:
        BackendError / ModelDirError / InputError: unknown names, mismatched precisions, missing directories.
    """
    choices = backend_choices()
    for b in backends:
        if b not in choices:
            import difflib

            close = difflib.get_close_matches(b, choices, n=1)
            raise BackendError(f"unknown backend '{b}'", evidence=f"valid: {', '.join(choices)}",
                               fix=f"did you mean '{close[0]}'?" if close else "choose one of the valid names")
    for p in precisions:
        if p not in PRECISIONS:
            raise ModelDirError(f"unknown precision '{p}'", evidence=f"valid: {', '.join(PRECISIONS)}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint {checkpoint} " + ("is a folder, not a file" if Path(checkpoint).is_dir()
                                                            else "does not exist"),
                              fix="pass the trained model.pth file, or leave --checkpoint out (seeded random weights)")
    if models and config:
        raise ModelDirError("pass either --model DIR or --config NAME, not both",
                            fix="--model runs existing directories; --config exports one into the cache")
    dirs: List[Path] = []
    if models:
        for m in models:
            d = Path(m)
            prec = read_dir_meta(d).get("precision", "fp32")
            if precisions and prec not in precisions:
                raise ModelDirError(f"{d} is a {prec} directory, but --precision asks for {', '.join(precisions)}",
                                    evidence="precision is recorded in the directory's metadata",
                                    fix="pass the directories of the wanted precisions (calibration/quantize.py "
                                        "writes fp16/int8 copies), or drop --precision")
            dirs.append(d)
    else:
        base = ensure_exported(config or DEFAULT_CONFIG, checkpoint, cache_root, seed, progress)
        dirs = [ensure_precision(base, p) for p in (precisions or ["fp32"])]
    variants: List[Variant] = []
    seen_ref = set()
    ckpt = Path(checkpoint) if checkpoint else None
    for d in dirs:
        meta = read_dir_meta(d)
        names, left_out = backends_for(backends, d)
        if skipped is not None:
            skipped.extend(left_out)
        for b in names:
            v = Variant(backend=b, model_dir=d, meta=meta, checkpoint=ckpt)
            if v.is_reference:
                if v.weights_key in seen_ref:
                    continue  # one reference per network: precision does not apply to it
                seen_ref.add(v.weights_key)
            variants.append(v)
    if reference:
        for d in dirs:
            meta = read_dir_meta(d)
            v = Variant(backend=REFERENCE_BACKEND, model_dir=d, meta=meta, checkpoint=ckpt)
            if v.weights_key not in seen_ref:
                seen_ref.add(v.weights_key)
                variants.append(v)
    return sorted(variants, key=lambda v: (not v.is_reference,))


def add_variant_arguments(parser, default_backend: str = "onnxruntime") -> Any:
    """The model-source and "what to run" options shared by benchmarks/fps.py and benchmarks/accuracy.py.

    Args:
        parser (argparse.ArgumentParser): the command's parser.
        default_backend (str): ``--backend``'s default (fps.py: "auto", the embedded default). Defaults to
            "onnxruntime".

    Returns the "what to run" group so a script can add its own options to it.
    """
    src = parser.add_argument_group(f"model (default: --config {DEFAULT_CONFIG}, seeded random weights)")
    src.add_argument("--model", nargs="+", default=[], metavar="DIR",
                     help="exported model directories (each: template.onnx, search.onnx[, engines])")
    src.add_argument("--config", help="built-in config name or pysot config.yaml, exported into --cache if needed")
    src.add_argument("--checkpoint", help="trained model.pth (for --config, and the torch reference's weights)")
    src.add_argument("--cache", default="models", help="folder for exported models (default: ./models)")
    run = parser.add_argument_group("what to run")
    run.add_argument("--backend", nargs="+", default=[default_backend], metavar="NAME",
                     help="auto (what the runtime picks here: TensorRT with engines and a GPU, else OpenVINO where "
                          "installed, else ONNX Runtime), all (every backend available here), onnxruntime, openvino, "
                          f"tensorrt, torch (the PyTorch reference, as pysot runs it); default: {default_backend}")
    run.add_argument("--precision", nargs="+", default=[], metavar="P",
                     help="fp32 / fp16 / int8: with --config, the variants to produce (fp16 is derived on demand); "
                          "with --model, a check on the directories' recorded precision")
    run.add_argument("--no-reference", action="store_true", help="do not add the torch reference")
    run.add_argument("--threads", type=int, help="CPU threads for every backend (default: physical cores)")
    return run
