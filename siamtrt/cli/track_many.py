"""Track many videos on Ray: one tracker actor per core (per GPU when the cluster has GPUs), one result file per video.

  python benchmarks/track_many.py --model models/siamrpn_alex_dwxcorr --videos videos/ --bbox-file boxes.txt \\
      --out results/many                     # local Ray; rerun the same command to resume
  python benchmarks/track_many.py ... --address auto       # an existing Ray cluster (shared --out and --model)
  python benchmarks/track_many.py ... --compare-workers 1 2 --json many.json --plot many.png   # throughput ratio

--videos: folders (their videos and OTB/image folders), list files (one path per line) or video paths.
--bbox-file: lines "name,x,y,w,h" (name = file name, stem or listed path) or JSON {name: [x,y,w,h]}; videos not in
it use the first ground-truth line beside them. Results: OUT/<name>.csv|parquet (frame,target,x,y,w,h,score) and
OUT/summary.json|csv (model identity; status, frames, frames/s, worker, error, init box, frame limit per video). A
rerun resumes only with the same model (refused otherwise: --no-resume redoes every video), and reuses a finished
video only for the same init box and --max-frames. One run writes into an --out at a time (OUT/track-many.lock).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import EXIT_PARTIAL, add_verbose, positive_int, run_command, setup_logging

DEFAULT_CONFIG = "siamrpn_alex_dwxcorr"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", type=Path, help=f"model directory (default: {DEFAULT_CONFIG} exported with seeded "
                                              "random weights into ./models, once)")
    p.add_argument("--videos", required=True, nargs="+", help="folders, list files or video paths")
    p.add_argument("--bbox-file", type=Path, help="init boxes (default: ground truth beside each video)")
    p.add_argument("--out", type=Path, default=Path("results/many"), help="output folder (default results/many)")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (default: a local Ray instance)")
    p.add_argument("--workers", type=positive_int, help="tracker actors (default: one per CPU, or per GPU)")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="result files (default csv)")
    p.add_argument("--backend", default="onnxruntime", help="runtime backend in each actor (default onnxruntime)")
    p.add_argument("--max-frames", type=positive_int, help="stop each video after N frames")
    p.add_argument("--retries", type=int, default=1, help="tries again a video whose worker died (default 1)")
    p.add_argument("--no-resume", action="store_true", help="redo videos already finished in --out")
    p.add_argument("--compare-workers", type=positive_int, nargs="+", metavar="N",
                   help="measure throughput with each worker count (fresh output folders) and print the ratio")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--plot", help="with --compare-workers: bar chart PNG")
    add_verbose(p)
    return p.parse_args(argv)


def _compare(a: argparse.Namespace, model: Path, jobs) -> dict:
    from siamtrt.batch.bench import compare_workers, plot_workers
    from siamtrt.benchmarks.results import weights_label
    from siamtrt.modeldir import ModelDir

    weights = weights_label(ModelDir.open(model).meta)
    report = compare_workers(model, jobs, None, a.compare_workers, a.address, a.num_cpus, a.max_frames, a.format,
                             a.out)
    report.update(model=str(model), weights=weights)
    print(f"{'workers':>7} {'videos':>6} {'frames':>7} {'seconds':>8} {'frames/s':>9} {'x first':>8} "
          f"{'load 1m':>8}  weights")
    for r in report["rows"]:
        print(f"{r['workers']:>7} {r['videos']:>6} {r['frames']:>7} {r['seconds']:>8.2f} {r['fps']:>9.1f} "
              f"{r['speedup_vs_first']:>8.2f} {r['load_average_1min']:>8.2f}  {weights}")
    print(f"ratio {a.compare_workers[-1]} vs {a.compare_workers[0]} workers: {report['ratio']:.2f}")
    if a.plot:
        print(f"wrote {plot_workers(report, a.plot, f'track_many, {model.name} ({weights})')}")
    return report


def _track(a: argparse.Namespace, model: Path, jobs) -> dict:
    from siamtrt.batch import track_many

    rep = track_many(model, jobs, a.out, address=a.address, workers=a.workers, fmt=a.format, backend=a.backend,
                     max_frames=a.max_frames, resume=not a.no_resume, retries=a.retries, num_cpus=a.num_cpus)
    print(rep.summary())
    return {"summary": rep.videos, "workers": rep.workers, "seconds": rep.seconds, "fps": rep.fps,
            "failed": rep.failed, "model": rep.model}


def _run(a: argparse.Namespace) -> int:
    from siamtrt.batch import check_run
    from siamtrt.outputs import atomic_file, check_writable

    check_writable([a.json, a.plot], what=["--json", "--plot"])  # before hours of tracking, not after
    jobs = check_run(a.videos, a.out, a.bbox_file, a.format)  # cheap checks before any export or Ray start
    model = a.model
    if model is None:
        from siamtrt.benchmarks.variants import ensure_exported

        model = ensure_exported(DEFAULT_CONFIG)
    report = _compare(a, Path(model), jobs) if a.compare_workers else _track(a, Path(model), jobs)
    if a.json:
        with atomic_file(a.json) as f:
            f.write(json.dumps(report, indent=1, default=str))
        print(f"wrote {a.json}")
    return EXIT_PARTIAL if report.get("failed") else 0  # failed videos are listed above and in OUT/summary.json


def main(argv=None) -> int:
    a = parse_args(argv)
    setup_logging(a.verbose)
    return run_command(lambda: _run(a), name="track_many")
