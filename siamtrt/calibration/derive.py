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
from typing import Any, Dict, Iterator, Mapping, Optional, Union

from ..errors import InputError, ModelDirError
from ..metadata import read_onnx_metadata, set_onnx_metadata, weights_line
from ..modeldir import (BRANCHES, CACHE_STAMP, ENGINE_FILES, ONNX_FILES, REFERENCE_WEIGHTS, TRT_CACHE_FILES, ModelDir,
                        sidecar_path)
from ..outputs import check_replaceable, staged_dir

LOG = logging.getLogger(__name__)

#: what belongs to the ONNX files a directory held before: replaced ONNX files make them stale
_STALE = tuple(ENGINE_FILES[b] for b in BRANCHES) + tuple(sidecar_path(ENGINE_FILES[b]).name for b in BRANCHES) \
    + tuple(TRT_CACHE_FILES[b] for b in BRANCHES) + (CACHE_STAMP, REFERENCE_WEIGHTS)


def check_model_out_dir(out: Union[str, Path], source: Optional[Union[str, Path]] = None) -> Path:
    """Refuse, before any work, an output directory a model directory cannot be written to.

    Accepted: a new or empty folder, or an existing model directory (it is updated once the new one is complete;
    its engines and calibration caches, made from the ONNX files being replaced, are dropped).

    Raises:
        InputError: ``out`` is ``source``, a file, not writable, or a non-empty folder that is not a model directory.
    """
    out = Path(out)
    if source is not None and out.resolve() == Path(source).resolve():
        raise InputError(f"the output directory {out} is the source directory",
                         fix="pass a new --out, e.g. models/NAME-int8")
    return check_replaceable(out, overwrite=True, flag=None, what="output directory", kind="model directory",
                             recognise=lambda p: any((p / f).is_file() for f in ONNX_FILES.values()),
                             layout=f"a model directory holds {' and '.join(ONNX_FILES.values())}")


def check_replaced_weights(out: Union[str, Path], weights: Mapping[str, Any], force: bool = False) -> None:
    """Refuse, before any work, to replace a model directory exported from other weights than ``weights``.

    Re-exporting the same weights (the same checkpoint sha256, or seeded random weights of the same seed and kind)
    replaces ``out`` silently; other weights — another checkpoint, or random weights where a checkpoint's were
    (a forgotten ``--checkpoint``) — would lose that export, so they need ``force``. Only the existing metadata is
    read; a directory none of whose ONNX files is readable has nothing to keep.

    Args:
        out (str | Path): the output directory. weights (Mapping): the new export's ``weights`` and
            ``checkpoint_sha256`` (:func:`siamtrt.metadata.export_weights`). force (bool): replace anyway.

    Raises:
        InputError: ``out`` holds a model directory made from other weights and ``force`` is False.
    """
    out = Path(out)
    if force or not out.is_dir():
        return
    new_sha = str(weights.get("checkpoint_sha256"))
    for branch in BRANCHES:
        f = out / ONNX_FILES[branch]
        if not f.is_file():
            continue
        try:
            old = read_onnx_metadata(f)
        except ModelDirError:
            continue  # unreadable: nothing to keep
        old_sha = str(old.get("checkpoint_sha256"))
        if old_sha == new_sha:
            continue
        raise InputError(f"{out} holds a model exported from other weights, which this export would replace",
                         evidence=f"{f} records {_weights_text(old)}; this export: {_weights_text(weights)}",
                         fix=f"export into another --out, re-export the same weights ({_same_weights(old)}), or "
                             "pass --force to replace it")


def _weights_text(meta: Mapping[str, Any]) -> str:
    try:
        return weights_line(dict(meta))
    except ModelDirError:
        return f"checkpoint_sha256 {meta.get('checkpoint_sha256')!r}"


def _same_weights(meta: Mapping[str, Any]) -> str:
    """The export options that give ``meta``'s weights again."""
    sha = str(meta.get("checkpoint_sha256"))
    if not sha.startswith("random-seed-"):
        return f"--checkpoint FILE, the file with sha256 {sha[:16]}…"
    seed = sha.split("-")[2]
    return f"no --checkpoint, --seed {seed}" + (" --random-heads matching" if sha.endswith("-matching") else "")


@contextlib.contextmanager
def staged_model_dir(out: Union[str, Path], source: Optional[Union[str, Path]] = None) -> Iterator[Path]:
    """Write a model directory into the yielded temporary folder; it becomes ``out`` when the block completes.

    Usage (the int8 and fp16 writers)::

        with staged_model_dir(out_dir, source=src.path) as stage:
            save_branch(model, stage, "template", meta)     # and any extra file (calibration caches) into stage
            save_branch(model, stage, "search", meta)
        # out_dir now holds the complete directory; on an exception or KeyboardInterrupt it is as it was

    Args:
        out (str | Path): the directory the caller promises (checked by :func:`check_model_out_dir`).
        source (str | Path): the directory it is made from, which must not be ``out``. Defaults to None.

    Raises:
        InputError: see :func:`check_model_out_dir`.
    """
    out = check_model_out_dir(out, source)
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


__all__ = ["check_model_out_dir", "check_replaced_weights", "derived_metadata", "save_branch", "staged_model_dir"]
