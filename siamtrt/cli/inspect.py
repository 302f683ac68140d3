"""Show what a model directory or an engine holds and whether it runs here (like polygraphy inspect / trtexec).

    siamtrt inspect models/siamrpn_alex_dwxcorr            # architecture, sizes, I/O, precision, GMAC, weights, engines
    siamtrt inspect models/siamrpn_alex_dwxcorr/search.engine --json
    siamtrt inspect models/r50-int8 --check                 # exit 1 when an engine is modified, missing or cannot load

A model directory: architecture and tracker conventions, exemplar / search / score sizes (every search size the
graph accepts), each branch's inputs and outputs, opset, parameters and GMAC at batch 1 (per search size), precision
and, for INT8, the float set the quantizer kept, what the weights are (kind, checkpoint sha256), and each engine
beside it. An engine: its sidecar (TensorRT package and version, GPU, precision, profile, I/O), whether the
TensorRT found here accepts it, and the file's sha256 against the one recorded at build time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional

from .common import EXIT_PARTIAL, add_verbose, parse_args, run_command, setup_logging


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("path", type=Path, metavar="MODEL_DIR|ENGINE|ONNX",
                   help="model directory, an .engine file (with its .engine.json sidecar) or one branch's .onnx")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when an engine was modified since it was built, cannot load with this TensorRT, "
                        "lacks its sidecar (or the sidecar is unreadable or edited), or one branch's engine is "
                        "missing (the tensorrt backend needs both)")
    add_verbose(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(build_parser(), argv)
    setup_logging(args.verbose)
    return run_command(lambda: inspect(args), name="inspect")


def inspect(args: argparse.Namespace) -> int:
    from ..runtime.inspection import format_report, inspect_path

    rep = inspect_path(args.path)
    print(json.dumps(rep, indent=1, default=str) if args.json else format_report(rep))
    if args.check:
        engines = [rep] if rep.get("kind") == "engine" else list((rep.get("engines") or {}).values())
        if any(not e.get("intact", False) or not e.get("loads_here", False) for e in engines):
            return EXIT_PARTIAL
    return 0
