"""Evidence for the tracking modes: success rate per mode on synthetic scenarios over real bag.avi backgrounds.

    python benchmarks/modes.py --model models/alex_lt_standin --make-stand-in --seeds 10 --out results/modes

Scenarios (siamtrt/benchmarks/modes.py): ``reenter`` (the target vanishes for >= 30 frames and reappears
elsewhere), ``distractor`` (a look-alike crosses over the target), and the exit variants (``exits`` = all of them:
the target walks out across an edge, stays out 10 / 30 / 60 frames, walks back in across the same or the opposite
edge). Success = IoU >= 0.5 over the frames after re-entry / after the crossing. Long-term modes need a model
exported with --lost-instance-size. Writes NAME.json and NAME.png and prints the table, labelled with what the
weights are.

    python benchmarks/modes.py --model models/alex_lt_standin --make-stand-in --scenarios exits \
        --modes short longterm --seeds 3 --out docs/figures --name modes_exits
"""

import argparse
import ast
import sys
from pathlib import Path
from typing import Dict, List

from siamtrt.cli.common import add_verbose, int_at_least, positive_int


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", required=True, help="exported model directory")
    p.add_argument("--make-stand-in", action="store_true",
                   help="first export the stand-in into --model if it is missing (alex, --random-heads matching "
                        "fitted on reenter renders of seeds 100-103, --lost-instance-size 831; needs torch) and use "
                        "its confidence thresholds")
    p.add_argument("--background", default=None, help="background video (default: ../shared/data/bag.avi)")
    p.add_argument("--modes", nargs="+", default=["short", "longterm", "distractor", "longterm+distractor"])
    p.add_argument("--scenarios", nargs="+", default=["reenter", "distractor"],
                   help="reenter, distractor, exit variant names (exit-right-gap10-same, ...) or 'exits' for all")
    p.add_argument("--seeds", type=positive_int, default=10, help="seeds per scenario (default 10)")
    p.add_argument("--frames", type=int_at_least(2), default=80, help="frames per sequence (default 80)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="TrackConfig override for every mode, e.g. confidence_low=0.99 (stand-in score scales)")
    p.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime threads (default 1)")
    p.add_argument("--out", default="results/modes", help="folder for NAME.json / NAME.png")
    p.add_argument("--name", default="modes", help="file name stem of the JSON and PNG (default modes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose(p)
    args = p.parse_args(argv)

    from siamtrt.benchmarks import modes
    from siamtrt.benchmarks.data import default_video
    from siamtrt.errors import InputError, Interrupted, SiamtrtError
    from siamtrt.modeldir import SEARCH_ONNX

    try:
        if not args.name.strip() or Path(args.name).name != args.name:
            raise InputError(f"--name {args.name!r} is not a file name stem",
                             fix="pass a plain name such as --name modes (NAME.json and NAME.png go into --out)")
        modes.check_outputs(args.out, args.name)  # before the stand-in export and the sequences
        overrides = parse_overrides(args.set)
        kinds = [k for name in args.scenarios for k in (modes.EXIT_VARIANTS if name == "exits" else [name])]
        modes.check_request(kinds, args.frames)
        background = args.background or default_video()
        constants = dict(modes.STANDIN_CONSTANTS) if args.make_stand_in else {}
        if args.make_stand_in and not (Path(args.model) / SEARCH_ONNX).is_file():
            modes.make_standin(args.model, background)
        constants.update(overrides)
        partial = modes.report_paths(args.out, args.name)[2]
        try:
            rep = modes.run_modes(args.model, background, kinds=kinds,
                                  modes=args.modes, seeds=range(args.seeds), frames=args.frames, constants=constants,
                                  progress=not args.quiet, threads=args.threads, partial=partial)
        except KeyboardInterrupt:
            kept = (f"the sequences finished so far are in {partial} (for reading: a new run starts over)"
                    if partial.is_file() else "nothing was written")
            raise Interrupted(f"interrupted before the report; {kept}") from None
        jpath, ppath = modes.write_report(rep, args.out, args.name)
        partial.unlink(missing_ok=True)  # the report holds all of it
    except (SiamtrtError, ValueError, SyntaxError, TypeError) as e:
        if isinstance(e, Interrupted):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(modes.table(rep))
    print(f"json: {jpath}\nplot: {ppath}")
    return 0


def parse_overrides(items: List[str]) -> Dict[str, object]:
    """``--set KEY=VALUE`` items → TrackConfig overrides (VALUE a Python literal: 0.99, None, True, (1, 2)).

    Raises:
        InputError: not KEY=VALUE, a key TrackConfig does not have (the valid keys listed), or a value that is not a
            literal.
    """
    import dataclasses
    import difflib

    from siamtrt.config import TrackConfig
    from siamtrt.errors import InputError

    keys = [f.name for f in dataclasses.fields(TrackConfig)]
    out: Dict[str, object] = {}
    for kv in items:
        key, eq, value = kv.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise InputError(f"--set {kv!r} is not KEY=VALUE", fix="e.g. --set confidence_low=0.99")
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            raise InputError(f"--set {key}: TrackConfig has no key {key!r}", evidence="valid: " + ", ".join(keys),
                             fix=f"did you mean {close[0]!r}?" if close else "use one of the valid keys")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise InputError(f"--set {kv}: {value!r} is not a value", evidence="VALUE is read as a Python literal",
                             fix=f"a number, None, True/False or a quoted string, e.g. --set {key}=0.99") from None
    return out
