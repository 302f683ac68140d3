"""The metadata every artifact carries (ONNX ``metadata_props``, engine sidecars), defined once.

An exported model directory is self-describing: the runtime, calibration and engine builder read these keys and
never re-derive them from a config file. Values are JSON-encoded strings under the ``siamtrt.`` prefix.
No torch here: the runtime imports this module on a Jetson.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from . import __version__
from .config import ModelConfig
from .errors import ModelDirError

PREFIX = "siamtrt."
TEMPLATE_INPUT = "template"
SEARCH_INPUT = "search"
SEARCH_OUTPUTS = ("cls", "loc")
PRECISIONS = ("fp32", "fp16", "int8")

#: what the weights of an export are: loaded from a checkpoint file, or seeded random (realistic random heads, or
#: the template-matching stand-in of siamtrt.export.matching_init)
WEIGHTS_KINDS = ("checkpoint", "random-realistic", "random-matching")

# Keys every exported ONNX file carries (besides the per-branch ones). "weights" replaced the boolean "trained"
# (which meant "loaded from a file"); directories written before carry "trained" and are read as described in
# weights_kind().
REQUIRED_KEYS = ("version", "arch", "family", "config", "branch", "exemplar_size", "instance_size", "score_size",
                 "anchor", "track", "template_outputs", "precision", "xcorr", "batch", "checkpoint_sha256")


def weights_kind(meta: Dict[str, Any]) -> str:
    """The weights kind of a metadata dict, also for directories written before the ``weights`` key.

    Old directories recorded ``trained`` (True = loaded from a checkpoint file, which may itself hold random
    weights): they read as "checkpoint"; untrained ones as "random-matching" or "random-realistic" from their
    ``checkpoint_sha256`` ("random-seed-<n>[-matching]").

    Raises:
        ModelDirError: neither ``weights`` nor ``trained`` is present, or ``weights`` is not a known kind.
    """
    kind = meta.get("weights")
    if kind is None and "trained" in meta:
        if meta["trained"]:
            return "checkpoint"
        return "random-matching" if str(meta.get("checkpoint_sha256", "")).endswith("-matching") else "random-realistic"
    if kind not in WEIGHTS_KINDS:
        raise ModelDirError(f"unknown weights kind {kind!r} in the model metadata",
                            evidence=f"expected one of {WEIGHTS_KINDS} (or the older 'trained' key)",
                            fix="re-export it with siamtrt export")
    return kind


def weights_line(meta: Dict[str, Any]) -> str:
    """One line saying what the weights are, for every report: kind plus checkpoint sha256 (or seed)."""
    kind = weights_kind(meta)
    sha = str(meta.get("checkpoint_sha256", ""))
    if kind == "checkpoint":
        return f"checkpoint (sha256 {sha[:16]}…)"
    seed = sha.split("-")[2] if sha.startswith("random-seed-") else "?"
    what = ("untrained template-matching stand-in" if kind == "random-matching" else "untrained random heads")
    return f"{kind} (seed {seed}; {what})"


def untrained_warning(meta: Dict[str, Any]) -> str:
    """The one-line warning for random weights ("" for a checkpoint), as to_onnx.py and track.py print it."""
    kind = weights_kind(meta)
    if kind == "checkpoint":
        return ""
    what = ("template-matching stand-in: it follows the target loosely" if kind == "random-matching"
            else "its boxes follow nothing (scores near 1.0 mean nothing)")
    return (f"WARNING: {weights_line(meta)}: SEEDED RANDOM WEIGHTS, untrained — {what}. Fine for speed and "
            "pipeline checks; export a trained checkpoint (--checkpoint model.pth) to track.")


def random_weights_label(seed: int, random_heads: str = "realistic") -> str:
    """The ``checkpoint_sha256`` entry of seeded random weights: "random-seed-<n>", "-matching" for matching heads."""
    return f"random-seed-{int(seed)}" + ("-matching" if random_heads == "matching" else "")


def export_weights(checkpoint: Optional[Union[str, Path]] = None, seed: int = 0,
                   random_heads: str = "realistic", arch: Optional[str] = None) -> Dict[str, str]:
    """The ``weights`` and ``checkpoint_sha256`` entries an export with these options records, without torch (the
    checkpoint file is hashed, not loaded), plus ``arch`` when given: what :func:`weights_line` and the replace check
    compare (seeded random weights of two architectures share the label ``random-seed-<n>``)."""
    if checkpoint is not None:
        p = Path(checkpoint)
        st = p.stat()
        out = {"weights": "checkpoint", "checkpoint_sha256": _sha256_once(str(p.resolve()), st.st_size,
                                                                          st.st_mtime_ns)}
    else:
        out = {"weights": "random-matching" if random_heads == "matching" else "random-realistic",
               "checkpoint_sha256": random_weights_label(seed, random_heads)}
    return out if arch is None else dict(out, arch=arch)


@functools.lru_cache(maxsize=8)
def _sha256_once(path: str, size: int, mtime_ns: int) -> str:
    """A checkpoint's sha256, once per file version (the CLI's check and the exporter's both ask)."""
    return file_sha256(path)


def build_metadata(cfg: ModelConfig, *, branch: str, template_outputs: List[str], checkpoint_sha256: str,
                   weights: str, precision: str = "fp32", xcorr: str = "conv", batch: str = "dynamic",
                   **extra: Any) -> Dict[str, Any]:
    """The metadata dict for one exported branch (plain Python values; encoded by :func:`encode`).

    ``weights`` is one of :data:`WEIGHTS_KINDS`; ``checkpoint_sha256`` the checkpoint file's sha256, or
    "random-seed-<n>[-matching]" for random weights.
    """
    if weights not in WEIGHTS_KINDS:
        raise ValueError(f"weights must be one of {WEIGHTS_KINDS}, got {weights!r}")
    meta = {
        "version": __version__, "arch": cfg.name, "family": cfg.family, "config": cfg.to_dict(), "branch": branch,
        "exemplar_size": cfg.track.exemplar_size, "instance_size": cfg.track.instance_size,
        "instance_sizes": list(cfg.track.instance_sizes), "score_size": cfg.score_size,
        "anchor": cfg.to_dict()["anchor"], "track": cfg.to_dict()["track"],
        "template_outputs": list(template_outputs), "precision": precision, "xcorr": xcorr, "batch": batch,
        "checkpoint_sha256": checkpoint_sha256, "weights": weights,
    }
    meta.update(extra)
    return meta


def encode(meta: Dict[str, Any]) -> Dict[str, str]:
    return {PREFIX + k: json.dumps(v) for k, v in meta.items()}


def decode(props: Dict[str, str]) -> Dict[str, Any]:
    out = {}
    for k, v in props.items():
        if k.startswith(PREFIX):
            try:
                out[k[len(PREFIX):]] = json.loads(v)
            except json.JSONDecodeError:
                out[k[len(PREFIX):]] = v
    return out


def set_onnx_metadata(model, meta: Dict[str, Any]) -> None:
    """Replace the siamtrt.* entries of an ``onnx.ModelProto``'s metadata_props with ``meta``."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for k, v in keep + sorted(encode(meta).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


# ONNX ModelProto field numbers (onnx/onnx.proto3) the reader below needs; StringStringEntryProto: key 1, value 2.
_IR_VERSION, _GRAPH, _METADATA_PROPS = 1, 7, 14


def _varint(buf, i: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]  # IndexError past the end: a truncated file
        value |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return value, i
        if shift > 63:
            raise ValueError(f"varint longer than 10 bytes at offset {i}")


def _fields(buf, start: int, end: int) -> Iterator[Tuple[int, Any]]:
    """(field number, value) of one protobuf message in ``buf[start:end]``: an int for varint fields, a (start, end)
    range for length-delimited ones, None for fixed-size ones (skipped). Groups (wire types 3 / 4, which no ONNX
    writer emits) are refused."""
    i = start
    while i < end:
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ValueError(f"field number 0 at offset {i}")
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"wire type {wire} at offset {i}")
        if i > end:
            raise ValueError(f"field {field} runs past the end ({i} > {end} bytes)")
        yield field, value


class _FileBytes:
    """Byte access to an open file for :func:`_varint` (reads, never maps: a file truncated meanwhile is an error,
    not a SIGBUS)."""

    def __init__(self, f):
        self.f = f

    def __getitem__(self, i: int) -> int:
        self.f.seek(i)
        b = self.f.read(1)
        if not b:
            raise IndexError(f"the file ends at offset {i}, inside a field header")
        return b[0]


def _onnx_header(path: Path) -> Tuple[int, bool, Dict[str, str]]:
    """ir_version, whether a graph is present, and metadata_props of an ONNX file, read from the protobuf wire
    format without the ``onnx`` package (the runtime deploys without it) and without reading the weights: the
    top-level fields are read one by one, the graph skipped by its length."""
    ir_version, has_graph, props = 0, False, {}
    with open(path, "rb") as f:
        for field, value in _fields(_FileBytes(f), 0, os.fstat(f.fileno()).st_size):
            if field == _IR_VERSION and isinstance(value, int):
                ir_version = value
            elif field == _GRAPH and isinstance(value, tuple):
                has_graph = True
            elif field == _METADATA_PROPS and isinstance(value, tuple):
                f.seek(value[0])
                entry_bytes = f.read(value[1] - value[0])
                entry = {}
                for k, span in _fields(entry_bytes, 0, len(entry_bytes)):
                    if k in (1, 2) and isinstance(span, tuple):  # key 1, value 2; other fields skipped
                        entry[k] = entry_bytes[span[0]:span[1]].decode("utf-8")
                props[entry.get(1, "")] = entry.get(2, "")
    return ir_version, has_graph, props


def export_command(out: Union[str, Path] = "DIR") -> str:
    """The export command the fixes name (one spelling: ``modeldir.REEXPORT`` and the readers here use it)."""
    return f"siamtrt export --config NAME --checkpoint model.pth --out {out}"


def reexport_fix(path: Path) -> str:
    """The fix for an ONNX file of a model directory that cannot be read."""
    return f"copy it again from the directory it came from, or re-export the directory: {export_command(path.parent)}"


def read_onnx_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """Read the siamtrt metadata of one ONNX file as stored (weights are not loaded; no ``onnx`` package needed).

    Directories written by earlier versions are brought to today's form in one place, ``siamtrt.modeldir.migrate``
    (which :class:`siamtrt.modeldir.ModelDir` applies); this reader does not rewrite keys.

    Raises:
        ModelDirError: the file is missing, unreadable, empty, truncated, not ONNX, or carries no siamtrt metadata.
            Only the top level and the metadata are read here: a graph damaged inside is refused by the engine that
            loads it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelDirError(f"{path} does not exist", fix=f"export the model: {export_command(path.parent)}")
    reexport = reexport_fix(path)
    if path.stat().st_size == 0:
        raise ModelDirError(f"{path} is empty (0 bytes)",
                            evidence="usually an interrupted copy or download, or a write cut short by a full disk",
                            fix=reexport)
    try:
        ir_version, has_graph, props = _onnx_header(path)
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path} is not a readable ONNX file (corrupt or truncated?)",
                            evidence=f"{path.stat().st_size} bytes; {repr(e)[:300]}", fix=reexport) from None
    except OSError as e:
        raise ModelDirError(f"{path} cannot be read", evidence=f"{type(e).__name__}: {e}",
                            fix="check the file's permissions and the file system it is on") from None
    if not ir_version or not has_graph:  # some non-ONNX bytes parse as protobuf fields
        raise ModelDirError(f"{path} is not an ONNX model (truncated, or another kind of file)",
                            evidence=f"{path.stat().st_size} bytes that hold no ONNX graph "
                                     f"(ir_version {ir_version}, graph {'present' if has_graph else 'absent'})",
                            fix=reexport)
    meta = decode(props)
    missing = [k for k in REQUIRED_KEYS if k not in meta] + ([] if "weights" in meta or "trained" in meta
                                                            else ["weights"])
    if missing:
        raise ModelDirError(f"{path} lacks siamtrt metadata keys {missing}",
                            evidence="it was not written by siamtrt's exporter (or by an older version)",
                            fix="re-export it with siamtrt export")
    return meta


def file_sha256(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
