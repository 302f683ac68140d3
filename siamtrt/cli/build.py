"""Build TensorRT engines (template.engine, search.engine + JSON sidecars) from an exported model directory.

Examples:
    siamtrt build --model models/siamrpn_alex_dwxcorr-random                          # precision of the export
    python export/build_engine.py --model models/siamrpn_mobilev2_l234_dwxcorr --fp16
    python export/build_engine.py --model models/r50_int8 --int8 --timing-cache r50.cache
    python export/build_engine.py --model models/r50 --fp16 --xcorr plugin --max-batch 4   # full TensorRT only
    python export/build_engine.py --model models/mobilev2 --fp16 --dla 0                   # Jetson Xavier / Orin

Works with `tensorrt` (JetPack, NVIDIA's index) and `tensorrt_rtx` (builds without a GPU, conv mode only).
See docs/tensorrt.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export.build_options import BuildOptions  # torch-free, TensorRT-free: --help works without either
from .common import parse_args as _parse, run_command, setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    return _parse(build_parser(), argv)


def build_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", required=True, type=Path, help="model directory (template.onnx, search.onnx)")
    BuildOptions.add_arguments(p)  # every build option, defined once (siamtrt/export/build_options.py)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log TensorRT warnings")
    return p


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    return run_command(lambda: build(args), name="build")


def build(args: argparse.Namespace) -> int:
    from siamtrt.export.engine import build_engine

    report = build_engine(args.model, BuildOptions.from_args(args), progress=not args.no_progress)
    print(report.summary())
    return 0
