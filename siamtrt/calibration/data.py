"""The calibration set: template and search crops (cut by :mod:`.collect` exactly as the tracker cuts them), their
feeds, and the one ``.npz`` file that stores them.

The calibration set is a plain iterable of feed dicts (style rule 9): :meth:`CalibrationSet.template_feeds` yields
``{"template": [n,3,E,E] float32}`` and :meth:`CalibrationSet.search_feeds` yields ``{"search": [n,3,S,S], <kernel
name>: [n,…]}`` where the kernels are the FP32 template outputs of the template each search crop is paired with
(the search branch never sees random kernels). Crops are stored as uint8 (they *are* uint8 images; the network
input is their float32 copy), kernels as float32.

File layout (``np.savez_compressed``, no pickles):

* ``template`` uint8 [Nt,3,E,E], ``search`` uint8 [Ns,3,S,S], ``pair`` int32 [Ns] (index into ``template``);
* for a model with an adaptive search size (SiamRPNBIG: 271, or 287 for small targets) also ``search_alt`` uint8
  [Na,3,S',S'] and ``pair_alt`` int32 [Na]: at every sampled frame the tracker's crop at the *other* size, cut from
  the same state (the size a target gets is fixed at init, so one video rarely shows both);
* ``kernel/<name>`` float32 [Nt,…] for every name in the model's ``template_outputs`` (FP32 template outputs);
* ``meta``: a JSON string — format, arch, sizes, template_outputs, the sha256 of the template.onnx that produced
  the kernels, the sources (path, frames, where the boxes came from) and the frame of every sample.

Sizes are checked against the model on use; kernels are recomputed when the template model differs from the one
that produced them (another export of the same architecture, say).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..errors import CalibrationError
from ..metadata import SEARCH_INPUT, TEMPLATE_INPUT
from ..modeldir import ModelDir, collect_command
from ..outputs import atomic_path

LOG = logging.getLogger(__name__)

FORMAT = "siamtrt-calib/1"
KERNEL_PREFIX = "kernel/"
#: below this many search crops the int8 ranges are noisy (documented in docs/calibration.md); a warning is logged.
MIN_RECOMMENDED_SEARCH = 64

Feed = Dict[str, np.ndarray]


@dataclass
class CalibrationSet:
    """Template crops, search crops, their pairing and (optionally) the FP32 kernels of the templates."""

    template: np.ndarray                      # uint8 [Nt,3,E,E]
    search: np.ndarray                        # uint8 [Ns,3,S,S]
    pair: np.ndarray                          # int32 [Ns] → template index
    kernels: Dict[str, np.ndarray] = field(default_factory=dict)  # name → float32 [Nt,…]
    meta: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    search_alt: Optional[np.ndarray] = None   # uint8 [Na,3,S',S']: the adaptive model's other search size
    pair_alt: Optional[np.ndarray] = None     # int [Na] → template index

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def num_templates(self) -> int:
        return int(self.template.shape[0])

    @property
    def num_search(self) -> int:
        return int(self.search.shape[0])

    @property
    def exemplar_size(self) -> int:
        return int(self.template.shape[-1])

    @property
    def instance_size(self) -> int:
        return int(self.search.shape[-1])

    @property
    def alt_instance_size(self) -> Optional[int]:
        return None if self.search_alt is None else int(self.search_alt.shape[-1])

    def summary(self) -> str:
        src = ", ".join(Path(s["path"]).name for s in self.meta.get("sources", [])) or "?"
        alt = (f" (+ {len(self.search_alt)} at {self.alt_instance_size}x{self.alt_instance_size})"
               if self.search_alt is not None else "")
        return (f"{self.num_search} search crop{'s' * (self.num_search != 1)} "
                f"{self.instance_size}x{self.instance_size}{alt}, {self.num_templates} template "
                f"crop{'s' * (self.num_templates != 1)} {self.exemplar_size}x{self.exemplar_size} from {src}")

    # ---------------------------------------------------------------------------------------------------- feeds
    def template_feeds(self, batch: int = 1) -> Iterator[Feed]:
        """Feed dicts for the template branch: ``{"template": float32 [n,3,E,E]}``."""
        for i in range(0, self.num_templates, batch):
            yield {TEMPLATE_INPUT: self.template[i:i + batch].astype(np.float32)}

    def search_feeds(self, kernels: Dict[str, np.ndarray], batch: int = 1, alt: bool = False) -> Iterator[Feed]:
        """Feed dicts for the search branch: search crops plus the kernels of their paired templates.

        Args:
            kernels (dict): name → [Nt,…] template outputs (from :meth:`kernels_for` or a template model).
            batch (int): crops per feed. Defaults to 1.
            alt (bool): also the crops at the adaptive model's other search size, after the main ones (one size
                per feed). Defaults to False.
        """
        for i in range(0, self.num_search, batch):
            idx = self.pair[i:i + batch]
            feed = {SEARCH_INPUT: self.search[i:i + batch].astype(np.float32)}
            for name, k in kernels.items():
                feed[name] = np.ascontiguousarray(k[idx])
            yield feed
        other = self.alt_set() if alt else None
        if other is not None:
            yield from other.search_feeds(kernels, batch)

    def branch_feeds(self, branch: str, kernels: Optional[Dict[str, np.ndarray]], batch: int = 1
                     ) -> Tuple[Iterator[Feed], int]:
        """(feeds, crop count) of one branch, every search size included: what each calibrator of a model
        directory iterates (INT8 Q/DQ, TensorRT caches, FP16 ranges)."""
        if branch == "template":
            return self.template_feeds(batch), self.num_templates
        return self.search_feeds(kernels, batch, alt=True), self.num_search_feeds

    def alt_set(self) -> Optional["CalibrationSet"]:
        """The crops at the adaptive model's other search size as a set of their own (same templates and kernels),
        or None when there are none."""
        if self.search_alt is None:
            return None
        return replace(self, search=self.search_alt, pair=self.pair_alt, search_alt=None, pair_alt=None)

    @property
    def num_search_feeds(self) -> int:
        """Search crops over both sizes (what ``search_feeds(..., alt=True)`` yields at batch 1)."""
        return self.num_search + (0 if self.search_alt is None else len(self.search_alt))

    def kernels_for(self, model: ModelDir, threads: Optional[int] = None,
                    other_weights: bool = False) -> Dict[str, np.ndarray]:
        """FP32 kernels for ``model``'s search branch: the stored ones when they came from this very template
        model, else recomputed with its template.onnx in ONNX Runtime (``other_weights``: see check_model)."""
        self.check_model(model, other_weights)
        sha = model.sha256("template")
        names = model.template_outputs
        if self.kernels and self.meta.get("template_sha256") == sha and all(n in self.kernels for n in names):
            return {n: self.kernels[n] for n in names}
        LOG.info("INT8: recomputing %d template kernels with %s (the calibration file was collected with another "
                 "template model)", self.num_templates, model.onnx("template"))
        return run_template(model, self.template, threads=threads)

    # --------------------------------------------------------------------------------------------- validation
    def check_model(self, model: ModelDir, other_weights: bool = False) -> None:
        """The crops fit ``model`` (exemplar and instance size) and were collected on its weights.

        The weights are the architecture and checkpoint recorded at collect time (:func:`weights_mismatch`). Crops
        cut along another checkpoint's trajectory, with its kernels, calibrate the wrong activations;
        ``other_weights=True`` (``quantize.py --force``) accepts them.

        Raises:
            CalibrationError: size mismatch, or other weights, with the collect command that fixes it.
        """
        want = (model.exemplar_size, model.instance_size)
        have = (self.exemplar_size, self.instance_size)
        alt = model.alt_instance_size
        if self.search_alt is not None and self.alt_instance_size != alt:
            want, have = (want[0], want[1], alt), (have[0], have[1], self.alt_instance_size)
        if want != have:
            raise CalibrationError(
                f"calibration file {self.path or ''} does not fit the model {model.path}",
                evidence=f"crops are exemplar/instance {have[0]}/{have[1]}, the model ({model.meta['arch']}) "
                         f"takes {want[0]}/{want[1]}",
                fix=f"collect crops for this model: {collect_command(model.path)}")
        what = weights_mismatch(self.meta, model)
        if what and not other_weights:
            raise CalibrationError(f"calibration file {self.path or ''} was collected on other weights than "
                                   f"{model.path}", evidence=f"it records {what}",
                                   fix=f"collect crops with this model: {collect_command(model.path)} (or --force if "
                                       "the two are exports of the same weights)")

    # -------------------------------------------------------------------------------------------------- storage
    def save(self, path: Union[str, Path]) -> Path:
        """Write the set as one compressed ``.npz`` (see the module docstring for the layout): under a temporary
        name, renamed to ``path`` once complete, so an interrupted save leaves no partial file under that name."""
        path = npz_path(path)
        arrays = {"template": self.template, "search": self.search, "pair": self.pair.astype(np.int32),
                  "meta": np.array(json.dumps(self.meta))}
        for name, k in self.kernels.items():
            arrays[KERNEL_PREFIX + name] = k.astype(np.float32)
        if self.search_alt is not None:
            arrays["search_alt"] = self.search_alt
            arrays["pair_alt"] = self.pair_alt.astype(np.int32)
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **arrays)
        self.path = path
        return path


def npz_path(path: Union[str, Path]) -> Path:
    """Where :meth:`CalibrationSet.save` writes ``path`` (``.npz`` appended when missing, as ``np.savez`` does)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def calibration_meta(path: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The ``meta`` of a file :meth:`CalibrationSet.save` wrote (it names :data:`FORMAT`; only that array is read),
    or None for any other file: what ``collect --out`` may replace (when :func:`weights_mismatch` finds nothing)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, AttributeError):
        return None
    ok = isinstance(meta, dict) and str(meta.get("format", "")).startswith(FORMAT.split("/")[0] + "/")
    return meta if ok else None


def weights_mismatch(meta: Dict[str, Any], model: ModelDir) -> str:
    """What a calibration file's ``meta`` records instead of ``model``'s weights ("" when collected on them).

    The weights are the architecture and the checkpoint recorded at collect time (``checkpoint_sha256``: seeded
    random weights of two architectures share it); an older file without it is judged by the template.onnx sha256
    it records (another one: another export, maybe of the same weights, which the file cannot tell).
    """
    mine = meta.get("checkpoint_sha256")
    if meta.get("arch") not in (None, model.arch):
        return f"architecture {meta['arch']}, the model's is {model.arch}"
    if mine is not None:
        return "" if mine == model.checkpoint_sha256 else \
            f"checkpoint {str(mine)[:16]}…, the model's is {model.checkpoint_sha256[:16]}…"
    if meta.get("template_sha256") in (None, model.sha256("template")):
        return ""
    return (f"no checkpoint (an older file) but template.onnx sha256 {str(meta['template_sha256'])[:16]}…, the "
            f"model's is {model.sha256('template')[:16]}…")


def load_calibration(path: Union[str, Path]) -> CalibrationSet:
    """Read and validate a calibration file written by :meth:`CalibrationSet.save`.

    Raises:
        CalibrationError: missing, empty, corrupt or inconsistent file (what is wrong, and how to re-collect).
    """
    path = Path(path)
    recollect = f"re-create it: {collect_command(out=path)}"
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist", fix=recollect)
    if path.stat().st_size == 0:
        raise CalibrationError(f"calibration file {path} is empty (0 bytes)", fix=recollect)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CalibrationError(f"calibration file {path} is corrupt or not a siamtrt .npz",
                               evidence=f"{type(e).__name__}: {str(e)[:200]}", fix=recollect) from None
    if not isinstance(arrays, dict) or not arrays:
        raise CalibrationError(f"calibration file {path} holds no arrays", fix=recollect)
    missing = [k for k in ("template", "search", "pair", "meta") if k not in arrays]
    if missing:
        raise CalibrationError(f"calibration file {path} lacks {missing}",
                               evidence=f"arrays present: {sorted(arrays)}", fix=recollect)
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as e:
        raise CalibrationError(f"calibration file {path} has unreadable metadata", evidence=str(e),
                               fix=recollect) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CalibrationError(f"calibration file {path} has format {fmt!r}",
                               evidence=f"this siamtrt reads {FORMAT!r}", fix=recollect)
    tpl, srch, pair = arrays["template"], arrays["search"], arrays["pair"]
    alt, pair_alt = arrays.get("search_alt"), arrays.get("pair_alt")
    if (alt is None) != (pair_alt is None):
        raise CalibrationError(f"calibration file {path} has only one of 'search_alt' / 'pair_alt'",
                               evidence=f"arrays present: {sorted(arrays)}", fix=recollect)
    for name, a in (("template", tpl), ("search", srch)) + ((("search_alt", alt),) if alt is not None else ()):
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1] != 3 or a.shape[2] != a.shape[3]:
            raise CalibrationError(f"calibration file {path}: '{name}' is not a uint8 [N,3,S,S] crop array",
                                   evidence=f"dtype {a.dtype}, shape {a.shape}", fix=recollect)
    if tpl.shape[0] == 0 or srch.shape[0] == 0:
        raise CalibrationError(f"calibration file {path} contains no samples",
                               evidence=f"{tpl.shape[0]} template crops, {srch.shape[0]} search crops",
                               fix=recollect + " (check that the video has frames and the box lies inside them)")
    for name, p, crops in (("pair", pair, srch),) + ((("pair_alt", pair_alt, alt),) if alt is not None else ()):
        if p.shape != (crops.shape[0],) or (p.size and (p.min() < 0 or p.max() >= tpl.shape[0])):
            raise CalibrationError(f"calibration file {path}: '{name}' does not index the template crops",
                                   evidence=f"{name} shape {p.shape}, range [{p.min() if p.size else '-'}, "
                                            f"{p.max() if p.size else '-'}], {tpl.shape[0]} templates",
                                   fix=recollect)
    kernels = {k[len(KERNEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(KERNEL_PREFIX)}
    bad = {k: v.shape for k, v in kernels.items() if v.shape[0] != tpl.shape[0] or v.dtype != np.float32}
    if bad:
        raise CalibrationError(f"calibration file {path}: stored kernels do not match the template crops",
                               evidence=f"{bad} vs {tpl.shape[0]} templates", fix=recollect)
    return CalibrationSet(template=tpl, search=srch, pair=pair.astype(np.int64), kernels=kernels, meta=meta,
                          path=path, search_alt=alt,
                          pair_alt=None if pair_alt is None else pair_alt.astype(np.int64))


# ------------------------------------------------------------------------------------------------------- helpers
def run_template(model: ModelDir, crops: np.ndarray, threads: Optional[int] = None, batch: int = 8
                 ) -> Dict[str, np.ndarray]:
    """FP32 template outputs of uint8 crops [N,3,E,E], with the runtime's ONNX Runtime backend."""
    from ..runtime.ort import OrtBackend

    opts = {"providers": "cpu"}
    if threads:
        opts["threads"] = threads
    backend = OrtBackend.from_model_dir(model.path, model.meta, **opts)
    step = batch if model.dynamic_batch else 1
    parts: Dict[str, List[np.ndarray]] = {n: [] for n in model.template_outputs}
    with backend:
        for i in range(0, len(crops), step):
            out = backend.run_template(crops[i:i + step].astype(np.float32))
            for n in parts:
                parts[n].append(np.array(out[n], np.float32))
    return {n: np.concatenate(v) for n, v in parts.items()}


__all__ = ["FORMAT", "MIN_RECOMMENDED_SEARCH", "CalibrationSet", "calibration_meta", "load_calibration", "npz_path",
           "run_template", "weights_mismatch"]
