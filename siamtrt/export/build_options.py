"""The options of one engine build, defined once.

:class:`BuildOptions` is :func:`siamtrt.export.engine.build_engine`'s options, ``export/build_engine.py``'s flags
(:meth:`BuildOptions.add_arguments`), the sidecar's ``build_options`` (:meth:`BuildOptions.record`) and the sidecar's
``rebuild_command`` (:meth:`BuildOptions.rebuild_command`): a new option is one field here. Light imports only (the
command's ``--help`` needs neither TensorRT nor torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import EngineError, InputError
from ..metadata import PRECISIONS
from ..modeldir import XCORR_FORMS, build_command, collect_command
from ..outputs import check_writable

HARDWARE_COMPAT = ("none", "ampere_plus", "same_compute_capability")
PRECISION_HELP = {
    "fp32": "FP32 engines",
    "fp16": "FP16 engines (an FP32 export is converted where the builder is strongly typed)",
    "int8": "INT8 engines from a Q/DQ model made by calibration/quantize.py --target tensorrt (or, with --calib, "
            "implicit INT8 from an FP32 model on TensorRT 8.x-10.x)",
}


def _option(default: Any, flag: Optional[str], help: str, *, always: bool = False, **argparse_kw: Any):
    """A field with its command-line flag (None: a flag of its own form), help, and whether the rebuild command
    always spells it."""
    return field(default=default, metadata={"flag": flag, "help": help, "always": always, "argparse": argparse_kw})


@dataclass(frozen=True)
class BuildOptions:
    """What an engine build is asked for; each field's help text (its ``--flag``'s) documents it. ``None``
    defaults are resolved from the model directory (precision, xcorr) or mean "not used"; ``out_dir`` defaults to the
    model directory."""

    precision: Optional[str] = _option(None, None, "engine precision (default: the export's)", always=True)
    xcorr: Optional[str] = _option(None, "--xcorr", "depthwise correlation as TensorRT's runtime-weight Conv or the "
                                   "DepthwiseXCorr plugin (default: the export's mode)", always=True,
                                   choices=XCORR_FORMS)
    max_batch: int = _option(1, "--max-batch", "most targets per call (profile 1..N; default 1)", always=True,
                             type=int)
    opt_batch: int = _option(1, "--opt-batch", "batch the kernels are tuned for (default 1)", type=int)
    workspace_gib: Optional[float] = _option(None, "--workspace", "builder workspace limit in GiB", type=float,
                                             metavar="GiB")
    timing_cache: Optional[Path] = _option(None, "--timing-cache", "timing cache to reuse (read if present, written "
                                           "back)", type=Path, metavar="FILE")
    dla_core: Optional[int] = _option(None, "--dla", "build for DLA core N with GPU fallback", type=int,
                                      metavar="CORE")
    plugin_lib: Optional[Path] = _option(None, "--plugin-lib", "C++ plugin library for --xcorr plugin (default: the "
                                         "built one, else the Python plugin)", type=Path)
    hardware_compatibility: str = _option("none", "--hardware-compatibility", "engines portable across GPUs of "
                                          "this class (default none)", choices=HARDWARE_COMPAT)
    calib: Optional[Path] = _option(None, "--calib", "with --int8 on an FP32 directory: write TensorRT calibration "
                                    "caches from these crops (calibration/collect.py) and build implicit INT8 "
                                    "(TensorRT 8.x-10.x, JetPack 5/6)", type=Path, metavar="CALIB.NPZ")
    out_dir: Optional[Path] = _option(None, "--out", "output directory (default: the model directory)", type=Path)

    # ---------------------------------------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The command-line flags of every option (``--fp32|--fp16|--int8`` for the precision)."""
        prec = parser.add_mutually_exclusive_group()
        for p in PRECISIONS:
            prec.add_argument(f"--{p}", dest="precision", action="store_const", const=p, help=PRECISION_HELP[p])
        for f in dataclasses.fields(cls):
            if f.metadata["flag"]:
                parser.add_argument(f.metadata["flag"], dest=f.name, default=f.default, help=f.metadata["help"],
                                    **f.metadata["argparse"])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "BuildOptions":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    # ------------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """The checks that need nothing but the options and the file system (run before TensorRT is imported).

        Raises:
            EngineError: a bad value. InputError: a missing input file or an unwritable output.
        """
        if self.precision is not None and self.precision not in PRECISIONS:
            raise EngineError(f"unknown precision '{self.precision}'", evidence=f"valid: {PRECISIONS}")
        if self.xcorr is not None and self.xcorr not in XCORR_FORMS:
            raise EngineError(f"unknown xcorr mode '{self.xcorr}'", evidence=f"valid: {XCORR_FORMS}")
        if self.max_batch < 1 or not 1 <= self.opt_batch <= self.max_batch:
            raise EngineError(f"invalid batch profile: opt {self.opt_batch}, max {self.max_batch}",
                              fix="use 1 <= --opt-batch <= --max-batch")
        if self.dla_core is not None and self.dla_core < 0:
            raise EngineError(f"invalid DLA core {self.dla_core}", fix="use --dla 0 or --dla 1")
        if self.hardware_compatibility not in HARDWARE_COMPAT:
            raise EngineError(f"unknown hardware compatibility '{self.hardware_compatibility}'",
                              evidence=f"valid: {HARDWARE_COMPAT}")
        if self.workspace_gib is not None and self.workspace_gib <= 0:
            raise EngineError(f"invalid workspace {self.workspace_gib} GiB",
                              fix="pass a positive size, e.g. --workspace 2")
        for name, path in (("--calib", self.calib), ("--plugin-lib", self.plugin_lib)):
            if path is not None and not Path(path).is_file():
                raise InputError(f"{name} {path} does not exist",
                                 fix=f"collect crops first: {collect_command()}" if name == "--calib"
                                 else "build it: python -m siamtrt.plugin.build --cpp")
        check_writable([self.timing_cache], what=["--timing-cache"], dirs=[self.out_dir])

    # ------------------------------------------------------------------------------------------------ records
    def record(self) -> Dict[str, Any]:
        """The options as the sidecar's ``build_options`` (paths as absolute strings)."""
        return {f.name: str(Path(v).resolve()) if isinstance(v, Path) else v
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    def rebuild_command(self, model_dir: Path) -> str:
        """The exact ``siamtrt build`` command that reproduces a build with these (resolved) options:
        the precision, correlation and batch always, the rest where they differ from their defaults."""
        model_dir = Path(model_dir).resolve()
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "out_dir" and value is not None and Path(value).resolve() == model_dir:
                continue
            if value is None or (value == f.default and not f.metadata["always"]):
                continue
            if f.name == "precision":
                parts.append(f"--{value}")
                continue
            if isinstance(value, Path):
                value = Path(value).resolve()
            parts += [f.metadata["flag"], f"{value:g}" if isinstance(value, float) else str(value)]
        return build_command(shlex.quote(str(model_dir)), " ".join(shlex.quote(p) for p in parts))


__all__ = ["BuildOptions", "HARDWARE_COMPAT", "PRECISION_HELP"]
