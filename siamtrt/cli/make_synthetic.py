"""Write a synthetic tracking sequence with exact ground truth (OTB layout, plus VOT polygons and optionally a video).

A textured object moves, scales and rotates over the frames of a real video (default ../shared/data/bag.avi).

  python benchmarks/make_synthetic.py out/synthetic-s0 --frames 60 --seed 0 --video

OUT must be a new or empty folder; --overwrite replaces a sequence siamtrt wrote there (recognised by its
synthetic.json and layout), never a folder of other files. The sequence appears in OUT only once complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siamtrt.cli.common import add_verbose


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("out", help="sequence folder to write (its name is the sequence name)")
    p.add_argument("--background", help="background video (default: ../shared/data/bag.avi)")
    p.add_argument("--frames", type=int, default=60, help="number of frames (60)")
    p.add_argument("--seed", type=int, default=0, help="texture seed (0)")
    p.add_argument("--object-size", default="72,56", help="object w,h in pixels at scale 1 (72,56)")
    p.add_argument("--scale-amplitude", type=float, default=0.3, help="scale varies in 1 ± this, below 1 (0.3)")
    p.add_argument("--max-rotation", type=float, default=25.0, help="rotation amplitude in degrees (25)")
    p.add_argument("--video", action="store_true", help="also write <name>.avi and <name>.txt (video + gt file)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing synthetic sequence siamtrt wrote in OUT (a folder of other files is "
                        "refused); without it OUT must be new or empty")
    add_verbose(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from siamtrt.errors import InputError, SiamtrtError
    from siamtrt.benchmarks.data import default_video
    from siamtrt.benchmarks.synthetic import SyntheticSpec, make_synthetic_sequence

    try:
        try:
            w, h = (int(v) for v in args.object_size.split(","))
        except ValueError:
            raise InputError(f"--object-size must be w,h integers, got {args.object_size!r}",
                             fix="e.g. --object-size 72,56 (the default)") from None
        spec = SyntheticSpec(frames=args.frames, seed=args.seed, object_size=(w, h),
                             scale_amplitude=args.scale_amplitude, max_rotation_deg=args.max_rotation)
        # the spec and OUT are checked before the background is read; the sequence is written beside OUT and
        # renamed into place when complete
        seq = make_synthetic_sequence(args.out, args.background or default_video(), spec, video=args.video,
                                      overwrite=args.overwrite)
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {seq.source}: {len(seq)} frames, first box {', '.join(f'{v:.2f}' for v in seq.gt[0])}"
          + (f"; video {Path(args.out) / (Path(args.out).name + '.avi')}" if args.video else ""))
    print(f"next: siamtrt accuracy --sequence {args.out}")
    return 0
