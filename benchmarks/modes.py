#!/usr/bin/env python
"""Evidence for the tracking modes: success rate per mode on synthetic scenarios over real bag.avi backgrounds.

    python benchmarks/modes.py --model models/alex_lt_standin --make-stand-in --seeds 10 --out results/modes

Scenarios (siamtrt/benchmarks/modes.py): ``reenter`` (the target leaves for >= 30 frames and re-enters elsewhere)
and ``distractor`` (a look-alike crosses over the target). Success = IoU >= 0.5 over the frames after re-entry /
after the crossing. Long-term modes need a model exported with --lost-instance-size. Writes modes.json and
modes.png and prints the table, labelled with what the weights are.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.modes import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
