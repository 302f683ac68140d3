#!/usr/bin/env python
"""Track many videos on Ray: one tracker actor per core (per GPU when the cluster has GPUs), one result file per video.

  python benchmarks/track_many.py --model models/siamrpn_alex_dwxcorr --videos videos/ --bbox-file boxes.txt \\
      --out results/many                     # local Ray; rerun the same command to resume
  python benchmarks/track_many.py ... --address auto       # an existing Ray cluster (shared --out and --model)
  python benchmarks/track_many.py ... --compare-workers 1 2 --json many.json --plot many.png   # throughput ratio

--videos: folders (their videos and OTB/image folders), list files (one path per line) or video paths.
--bbox-file: lines "name,x,y,w,h" (name = file name, stem or listed path) or JSON {name: [x,y,w,h]}; videos not in
it use the first ground-truth line beside them. Results: OUT/<name>.csv|parquet (frame,x,y,w,h,score) and
OUT/summary.json|csv (status, frames, frames/s, worker, error per video).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.track_many import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
