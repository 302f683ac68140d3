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

from .common import parse_args as _parse, run_command, setup_logging  # no TensorRT/torch needed for --help


def parse_args(argv=None) -> argparse.Namespace:
    return _parse(build_parser(), argv)


def build_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", required=True, type=Path, help="model directory (template.onnx, search.onnx)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp32", dest="precision", action="store_const", const="fp32", help="FP32 engines")
    prec.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                      help="FP16 engines (an FP32 export is converted where the builder is strongly typed)")
    prec.add_argument("--int8", dest="precision", action="store_const", const="int8",
                      help="INT8 engines from a Q/DQ model made by calibration/quantize.py --target tensorrt (or, "
                           "with --calib, implicit INT8 from an FP32 model on TensorRT 8.x-10.x)")
    p.add_argument("--xcorr", choices=["conv", "plugin"], default=None,
                   help="depthwise correlation as TensorRT's runtime-weight Conv or the DepthwiseXCorr plugin "
                        "(default: the export's mode)")
    p.add_argument("--max-batch", type=int, default=1, help="most targets per call (profile 1..N; default 1)")
    p.add_argument("--opt-batch", type=int, default=1, help="batch the kernels are tuned for (default 1)")
    p.add_argument("--workspace", type=float, default=None, metavar="GiB", help="builder workspace limit in GiB")
    p.add_argument("--timing-cache", type=Path, default=None, metavar="FILE",
                   help="timing cache to reuse (read if present, written back)")
    p.add_argument("--dla", type=int, default=None, metavar="CORE", help="build for DLA core N with GPU fallback")
    p.add_argument("--plugin-lib", type=Path, default=None,
                   help="C++ plugin library for --xcorr plugin (default: the built one, else the Python plugin)")
    p.add_argument("--hardware-compatibility", choices=["none", "ampere_plus", "same_compute_capability"],
                   default="none", help="engines portable across GPUs of this class (default none)")
    p.add_argument("--calib", type=Path, default=None, metavar="CALIB.NPZ",
                   help="with --int8 on an FP32 directory: write TensorRT calibration caches from these crops "
                        "(calibration/collect.py) and build implicit INT8 (TensorRT 8.x-10.x, JetPack 5/6)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: the model directory)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log TensorRT warnings")
    return p


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    return run_command(lambda: build(args), name="build")


def build(args: argparse.Namespace) -> int:
    from siamtrt.export.engine import build_engine

    report = build_engine(args.model, precision=args.precision, xcorr=args.xcorr, max_batch=args.max_batch,
                          opt_batch=args.opt_batch, workspace_gib=args.workspace, timing_cache=args.timing_cache,
                          dla_core=args.dla, out_dir=args.out, plugin_lib=args.plugin_lib,
                          hardware_compatibility=args.hardware_compatibility, progress=not args.no_progress,
                          calib=args.calib)
    print(report.summary())
    return 0
