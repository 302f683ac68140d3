"""Writing a model directory (an export, or a derived fp16 / int8 copy) so that it is never seen half-written.

A derived directory holds ``template.onnx`` and ``search.onnx`` with the same I/O names and float32 I/O as the
source, the source metadata copied, ``precision`` changed, and one extra key describing how it was made
(``quantization``). Nothing else is copied (engines are per-precision and must be rebuilt from the new ONNX).

Every writer of a model directory — ``export/to_onnx.py``, ``quantize.py --precision fp16`` and ``--precision int8``
— writes inside :func:`staged_model_dir`: the files go to a temporary folder beside ``out`` that is renamed into
place only when the block completes, so an error or Ctrl-C leaves ``out`` as it was. Files are named by
:mod:`siamtrt.modeldir`.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union

from ..errors import InputError, ModelDirError
from ..metadata import read_onnx_metadata, set_onnx_metadata, weights_line
from ..modeldir import (BRANCHES, CACHE_STAMP, ENGINE_FILES, ONNX_FILES, REFERENCE_WEIGHTS, TRT_CACHE_FILES, ModelDir,
                        sidecar_path)
from ..outputs import check_replaceable, staged_dir

LOG = logging.getLogger(__name__)

#: what belongs to the ONNX files a directory held before: replaced ONNX files make them stale
_STALE = tuple(ENGINE_FILES[b] for b in BRANCHES) + tuple(sidecar_path(ENGINE_FILES[b]).name for b in BRANCHES) \
    + tuple(TRT_CACHE_FILES[b] for b in BRANCHES) + (CACHE_STAMP, REFERENCE_WEIGHTS)


def check_model_out_dir(out: Union[str, Path], source: Optional[Union[str, Path]] = None,
                        force: bool = False) -> Path:
    """Refuse, before any work, an output directory a model directory cannot be written to.

    Accepted: a new or empty folder, or an existing model directory (it is updated once the new one is complete;
    its engines and calibration caches, made from the ONNX files being replaced, are dropped) made from the weights
    of ``source`` (a re-quantize), or from any weights with ``force``.

    Raises:
        InputError: ``out`` is ``source``, a file, not writable, a non-empty folder that is not a model directory, or
        (unless ``force``) a model directory made from other weights than ``source``.
    """
    out = Path(out)
    if source is not None and out.resolve() == Path(source).resolve():
        raise InputError(f"the output directory {out} is the source directory",
                         fix="pass a new --out, e.g. models/NAME-int8")
    check_replaceable(out, overwrite=True, flag=None, what="output directory", kind="model directory",
                      recognise=lambda p: any((p / f).is_file() for f in ONNX_FILES.values()),
                      layout=f"a model directory holds {' and '.join(ONNX_FILES.values())}")
    if source is not None:
        check_replaced_weights(out, read_onnx_metadata(Path(source) / ONNX_FILES["template"]), force, source)
    return out


def other_weights_model(folder: Union[str, Path], weights: Mapping[str, Any]) -> Optional[Tuple[Path, Dict]]:
    """(ONNX file, its metadata) of the model directory ``folder`` when made from other weights than ``weights``
    (another ``checkpoint_sha256``, or another ``arch`` where both name one: seeded random weights of two
    architectures share a label), else None — also when ``folder`` holds no readable ONNX file (nothing to keep)."""
    folder = Path(folder)
    for branch in BRANCHES if folder.is_dir() else ():
        f = folder / ONNX_FILES[branch]
        try:
            old = read_onnx_metadata(f) if f.is_file() else None
        except ModelDirError:
            old = None  # unreadable: nothing to keep
        if old is None:
            continue
        other_arch = None not in (old.get("arch"), weights.get("arch")) and old["arch"] != weights["arch"]
        if other_arch or str(old.get("checkpoint_sha256")) != str(weights.get("checkpoint_sha256")):
            return f, old
    return None


def check_replaced_weights(out: Union[str, Path], weights: Mapping[str, Any], force: bool = False,
                           source: Optional[Union[str, Path]] = None) -> None:
    """Refuse, before any work, to replace a model directory made from other weights than ``weights``.

    Re-exporting (or re-deriving) the same weights (the same checkpoint sha256, or seeded random weights of the same
    seed and kind) replaces ``out`` silently; other weights — another checkpoint, or random weights where a
    checkpoint's were (a forgotten ``--checkpoint``) — would lose that work, so they need ``force``. Only the
    existing metadata is read (:func:`other_weights_model`).

    Args:
        out (str | Path): the output directory. weights (Mapping): the new model's ``weights`` and
            ``checkpoint_sha256`` (:func:`siamtrt.metadata.export_weights`, or the source's metadata). force (bool):
            replace anyway. source (str | Path): the model directory a derived copy is made from (None: an export).

    Raises:
        InputError: ``out`` holds a model directory made from other weights and ``force`` is False.
    """
    found = None if force else other_weights_model(out, weights)
    if found is None:
        return
    f, old = found
    job = "export" if source is None else f"copy of {source}"
    raise InputError(f"{out} holds a model exported from other weights, which this {job} would replace",
                     evidence=f"{f} records {weights_text(old)}; this {job}: {weights_text(weights)}",
                     fix="write into another --out" + (f", re-export the same weights ({_same_weights(old)})"
                                                       if source is None else "") + ", or pass --force to replace it")


def weights_text(meta: Mapping[str, Any]) -> str:
    """The weights of a model's metadata in words (its architecture first where it names one)."""
    arch = f"{meta['arch']}, " if meta.get("arch") else ""
    try:
        return arch + weights_line(dict(meta))
    except ModelDirError:
        return f"{arch}checkpoint_sha256 {meta.get('checkpoint_sha256')!r}"


def _same_weights(meta: Mapping[str, Any]) -> str:
    """The export options that give ``meta``'s weights again."""
    sha, config = str(meta.get("checkpoint_sha256")), f"--config {meta['arch']}, " if meta.get("arch") else ""
    if not sha.startswith("random-seed-"):
        return f"{config}--checkpoint FILE, the file with sha256 {sha[:16]}…"
    seed = sha.split("-")[2]
    return f"{config}no --checkpoint, --seed {seed}" + (" --random-heads matching" if sha.endswith("-matching") else "")


@contextlib.contextmanager
def staged_model_dir(out: Union[str, Path], source: Optional[Union[str, Path]] = None,
                     force: bool = False) -> Iterator[Path]:
    """Write a model directory into the yielded temporary folder; it becomes ``out`` when the block completes.

    Usage (the int8 and fp16 writers)::

        with staged_model_dir(out_dir, source=src.path) as stage:
            save_branch(model, stage, "template", meta)     # and any extra file (calibration caches) into stage
            save_branch(model, stage, "search", meta)
        # out_dir now holds the complete directory; on an exception or KeyboardInterrupt it is as it was

    Args:
        out (str | Path): the directory the caller promises (checked by :func:`check_model_out_dir`).
        source (str | Path): the directory it is made from, which must not be ``out``. Defaults to None.
        force (bool): replace a model directory made from other weights than ``source``. Defaults to False.

    Raises:
        InputError: see :func:`check_model_out_dir`.
    """
    out = check_model_out_dir(out, source, force)
    with staged_dir(out, keep_existing=True) as stage:
        stale = [name for name in _STALE if (stage / name).exists()]
        for name in stale:
            (stage / name).unlink()
        yield stage
    if stale:  # a warning: shown without -v, whether or not the job configured logging; said once it is done
        LOG.warning("model dir: removed %s from %s: made from the ONNX files this run replaced, they would not "
                    "match the new ones", ", ".join(stale), out)


def derived_metadata(source: ModelDir, branch: str, precision: str, details: Dict[str, Any]) -> Dict[str, Any]:
    """Source metadata with ``precision`` changed and the ``quantization`` entry added."""
    meta = dict(source.branch_meta(branch))
    meta["precision"] = precision
    meta["quantization"] = dict(details)
    return meta


def save_branch(model, out_dir: Path, branch: str, meta: Dict[str, Any]) -> Path:
    """Write one derived branch (into a :func:`staged_model_dir` stage) after ``onnx.checker`` validated it."""
    import onnx

    set_onnx_metadata(model, meta)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelDirError(f"the {meta.get('precision')} {branch} model fails onnx.checker",
                            evidence=str(e).splitlines()[0][:400],
                            fix="report this with the command line; try another --target/--method") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / ONNX_FILES[branch]
    onnx.save(model, str(dst))
    return dst


__all__ = ["check_model_out_dir", "check_replaced_weights", "derived_metadata", "other_weights_model", "save_branch",
           "staged_model_dir", "weights_text"]
