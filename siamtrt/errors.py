"""One exception type for the whole library: every message says what is wrong, the evidence, and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class SiamtrtError(Exception):
    """Base error. ``str(err)`` reads: what went wrong, then the evidence, then what to do.

    Args:
        what (str): one sentence naming the file, tensor or option and what is wrong with it.
        evidence (str): expected vs actual, key lists, versions. Defaults to None.
        fix (str): the command or change that resolves it. Defaults to None.
    """

    def __init__(self, what: str, evidence: Optional[str] = None, fix: Optional[str] = None):
        self.what = what
        self.evidence = evidence
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.what]
        if self.evidence:
            parts.append("  evidence: " + self.evidence.replace("\n", "\n            "))
        if self.fix:
            parts.append("  fix: " + self.fix.replace("\n", "\n       "))
        return "\n".join(parts)


def folder_listing(folder: Union[str, Path], limit: int = 12) -> str:
    """Evidence for a missing file: what ``folder`` holds, its first ``limit`` names sorted (a user pointing at a
    big folder gets a readable line, not thousands of names), or that it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist"
    names = sorted(p.name for p in folder.iterdir())
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"present: {names[:limit]}{more}"


class ConfigError(SiamtrtError):
    """Unknown or malformed model configuration."""


class CheckpointError(SiamtrtError):
    """A checkpoint that cannot be read or does not match the architecture."""


class ExportError(SiamtrtError):
    """ONNX export or its self-check failed."""


class ModelDirError(SiamtrtError):
    """A model directory is missing files or carries incompatible metadata."""


class InputError(SiamtrtError):
    """Bad user input: video, image folder, bounding box, calibration file."""


class EngineError(SiamtrtError):
    """TensorRT engine build or load problem (version, GPU, tampered ONNX, missing plugin)."""


class BackendError(SiamtrtError):
    """An inference backend is unavailable or was fed the wrong tensors."""


class CalibrationError(SiamtrtError):
    """Calibration data or quantization problem."""


class OutputError(SiamtrtError):
    """An output that could not be written while a job ran (disk full, its folder removed, a name too long): the
    message says what was kept and where."""


class Interrupted(SiamtrtError):
    """A run stopped by the user (Ctrl-C, SIGTERM). ``what`` says what was kept, e.g. "interrupted after 36 frames;
    boxes so far in b.txt.part". Library code raises it from ``KeyboardInterrupt`` once its outputs are safe; the
    commands print it and exit 130 (SIGINT) or 143 (SIGTERM), without a traceback."""
