"""Build TensorRT engines (template.engine, search.engine + JSON sidecars) from an exported model directory.

Examples:
    python export/build_engine.py --model models/siamrpn_alex_dwxcorr                # precision of the export
    python export/build_engine.py --model models/siamrpn_mobilev2_l234_dwxcorr --fp16
    python export/build_engine.py --model models/r50_int8 --int8 --timing-cache r50.cache
    python export/build_engine.py --model models/r50 --fp16 --xcorr plugin --max-batch 4   # full TensorRT only
    python export/build_engine.py --model models/mobilev2 --fp16 --dla 0                   # Jetson Xavier / Orin

Works with `tensorrt` (JetPack, NVIDIA's index) and `tensorrt_rtx` (builds without a GPU, conv mode only).
See docs/tensorrt.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


from siamtrt.errors import SiamtrtError  # no TensorRT/torch needed for --help
from siamtrt.export.build_options import BuildOptions


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", required=True, type=Path, help="model directory (template.onnx, search.onnx)")
    BuildOptions.add_arguments(p)  # every build option, defined once (siamtrt/export/build_options.py)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log TensorRT warnings")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        from siamtrt.export.engine import build_engine

        report = build_engine(args.model, BuildOptions.from_args(args), progress=not args.no_progress)
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
