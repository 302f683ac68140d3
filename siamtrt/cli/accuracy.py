"""One-pass evaluation (OTB success / precision plots) of each backend/precision of a model.

With no arguments: the default model (seeded random weights, exported once into ./models) with ONNX Runtime and the
PyTorch reference, on ../shared/data/bag plus one synthetic sequence. Results are cached under ./results
(results/<model>/<backend>-<precision>/<seq>.txt); scores are recomputed from those files on every run.

  python benchmarks/accuracy.py
  python benchmarks/accuracy.py --model models/mine models/mine-int8 --checkpoint model.pth \\
      --sequence ~/data/OTB100 --json otb.json --plot otb.png
"""

from __future__ import annotations

import argparse
import sys


from siamtrt.benchmarks.variants import add_variant_arguments  # torch-free
from siamtrt.cli.common import add_verbose, int_at_least, positive_int


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    add_variant_arguments(p)
    data = p.add_argument_group("sequences (default: ../shared/data/bag + one synthetic sequence)")
    data.add_argument("--sequence", nargs="+", default=[], metavar="PATH",
                      help="OTB folder (img/ + groundtruth_rect.txt), VOT folder (groundtruth.txt polygons), a "
                           "dataset root of such folders, a video with its gt file beside it, or VIDEO:GT_FILE")
    data.add_argument("--synthetic", type=int_at_least(0), default=1,
                      help="synthetic sequences added to the defaults (1)")
    data.add_argument("--synthetic-frames", type=int_at_least(2), default=60,
                      help="length of each synthetic sequence (60)")
    data.add_argument("--max-frames", type=positive_int, help="evaluate only the first N frames of every sequence")
    data.add_argument("--polygon", choices=["minmax", "area"], default="minmax",
                      help="VOT polygon to box: bounding rectangle (minmax) or pysot's area-preserving box (area)")
    out = p.add_argument_group("output")
    out.add_argument("--results", default="results", help="results folder (default: ./results)")
    out.add_argument("--force", action="store_true", help="re-run sequences that already have results")
    out.add_argument("--json", help="write scores, curves and per-sequence results to this JSON file")
    out.add_argument("--plot", help="write the success and precision plots (PNG)")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    add_verbose(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    from siamtrt.errors import Interrupted, SiamtrtError
    from siamtrt.benchmarks.accuracy import run_accuracy

    try:
        report = run_accuracy(models=args.model, config=args.config, checkpoint=args.checkpoint,
                              backends=args.backend, precisions=args.precision, sequences=args.sequence,
                              synthetic=args.synthetic, synthetic_frames=args.synthetic_frames,
                              max_frames=args.max_frames, polygon_mode=args.polygon, results_root=args.results,
                              force=args.force, threads=args.threads, reference=not args.no_reference,
                              json_out=args.json, plot_out=args.plot, cache_root=args.cache,
                              progress=not args.quiet)
    except Interrupted:
        raise  # the command's runner says what was kept and exits 130 / 143
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
