#!/usr/bin/env python
"""Track a target through a video with an exported model directory (numpy + OpenCV + one backend, no torch).

    python runtime/track.py --model models/siamrpn_alex_dwxcorr --video ../shared/data/bag.avi \\
        --bbox 316,140,112,115 --out boxes.txt --save-video out.mp4

Writes one line per frame, x,y,w,h,score (frame 0 is the given box with score 1). Repeat --bbox to track several
targets in one batched inference per frame (each line then holds one x,y,w,h,score group per target).
--mode longterm searches the whole frame (pysot's 831 search) while a target is lost; --mode distractor re-ranks
proposals against the similar-looking objects seen so far (docs/runtime.md "Tracking modes").
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.track import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
