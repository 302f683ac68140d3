"""bench, accuracy, report, collect and modes refuse what they can before any work: an output that cannot be written
(a run's results were lost to a traceback at the very end), a count below its minimum (at argument parsing), a video
whose ground truth is shorter than it, a report comparing a directory with itself — each with exit 2 and a message
that gives what, evidence and fix.

The library checks are called in-process (fast); the first step of each job's work is replaced by a function that
fails the test, so a check that runs after the work is caught even where the work would end in an error too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import siamtrt, snapshot
from siamtrt.errors import InputError

BAG_BOX = "316,140,112,115"


def _no_work(*a, **k):
    raise AssertionError("the job started its work before checking its outputs")


@pytest.fixture(scope="module")
def clips(tmp_path_factory, bag_video):
    """small.avi (bag.avi's first 10 frames), one.avi (1 frame) and box files of 3, 10 and 10 lines (the last with an
    empty first box)."""
    import cv2

    d = tmp_path_factory.mktemp("clips")
    cap = cv2.VideoCapture(str(bag_video))
    frames = [cap.read()[1] for _ in range(10)]
    cap.release()
    for name, fr in (("small.avi", frames), ("one.avi", frames[:1])):
        w = cv2.VideoWriter(str(d / name), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frames[0].shape[1],
                                                                                frames[0].shape[0]))
        for f in fr:
            w.write(f)
        w.release()
    (d / "gt3.txt").write_text("292,128,146,132\n" * 3)
    (d / "gt10.txt").write_text("292,128,146,132\n" * 10)
    (d / "empty_first.txt").write_text("nan,nan,nan,nan\n" + "292,128,146,132\n" * 9)
    return d


@pytest.fixture
def ws(tmp_path):
    """A scratch folder with a folder (adir) and a file (b.csv) in it."""
    (tmp_path / "adir").mkdir()
    (tmp_path / "b.csv").write_text("precious\n")
    return tmp_path


# (id, options as a function of the scratch folder, text of the message)
OUTPUT_CASES = [
    ("json-is-a-folder", lambda w: {"json_out": w / "adir"}, "--json"),
    ("plot-is-a-folder", lambda w: {"plot_out": w / "adir"}, "--plot"),
    ("json-under-a-file", lambda w: {"json_out": w / "b.csv" / "x.json"}, "is a file, not a folder"),
    ("json-and-plot-one-file", lambda w: {"json_out": w / "x.json", "plot_out": w / "x.json"}, "same file"),
    ("results-is-a-file", lambda w: {"results": w / "b.csv"}, "not a directory"),
]


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_bench_checks_its_outputs_before_the_run(case, tiny_model, bag_video, ws, monkeypatch):
    import siamtrt.benchmarks.fps as fps

    _, opts, expect = case
    kw = opts(ws)
    if "results" in kw:
        kw["results_dir"] = kw.pop("results")
    monkeypatch.setattr(fps, "probe_video", _no_work)
    before = snapshot(ws)
    with pytest.raises(InputError) as e:
        fps.run_fps(models=[tiny_model()], backends=["onnxruntime"], video=bag_video, frames=2, warmup=0,
                    reference=False, progress=False, headroom=False, **kw)
    assert expect in str(e.value) and e.value.fix
    assert snapshot(ws) == before


@pytest.mark.parametrize("given", [True, False], ids=["sequence", "defaults"])
@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_accuracy_checks_its_outputs_before_the_run(case, given, tiny_model, bag_sequence, ws, monkeypatch):
    """Checked once, against everything the run reads: the given sequences' ground truth is read first (no frame
    decoded), the default synthetic sequence is made only after the check."""
    import siamtrt.benchmarks.accuracy as acc
    import siamtrt.benchmarks.synthetic as synthetic

    _, opts, expect = case
    kw = opts(ws)
    monkeypatch.setattr(acc, "check_video_lengths", _no_work)
    monkeypatch.setattr(synthetic, "make_synthetic_sequence", _no_work)
    before = snapshot(ws)
    with pytest.raises(InputError) as e:
        acc.run_accuracy(models=[tiny_model()], backends=["onnxruntime"], sequences=[bag_sequence] if given else [],
                         synthetic=1 - given, max_frames=5, reference=False, progress=False,
                         results_root=kw.pop("results", ws / "results"), **kw)
    assert expect in str(e.value) and e.value.fix
    assert snapshot(ws) == before


def test_outputs_that_are_the_input_video_are_refused(tiny_model, clips, tmp_path):
    import shutil

    import siamtrt.benchmarks.accuracy as acc
    import siamtrt.benchmarks.fps as fps

    v = shutil.copy(clips / "small.avi", tmp_path / "v.avi")
    with pytest.raises(InputError, match="is the input"):
        fps.run_fps(models=[tiny_model()], video=v, json_out=v, reference=False, progress=False)
    with pytest.raises(InputError, match="is the input"):
        acc.run_accuracy(models=[tiny_model()], sequences=[f"{v}:{clips / 'gt10.txt'}"], plot_out=v,
                         results_root=tmp_path / "r", reference=False, progress=False)


def test_bench_command_exits_2_without_a_traceback(tiny_model, bag_video, ws):
    """The reported command: --json FOLDER ended in IsADirectoryError at os.replace after the whole run."""
    r = siamtrt("bench", "--model", tiny_model(), "--video", bag_video, "--no-reference", "--frames", "2",
                "--no-save", "--quiet", "--no-probe", "--json", ws / "adir", cwd=ws, timeout=300)
    assert r.returncode == 2 and "--json" in r.stderr and "is a directory" in r.stderr, r.stderr[-1500:]
    assert "Traceback" not in r.stderr and "fps" not in r.stdout


def test_bench_mode_checks_its_json_first(tiny_model, clips, ws, capsys):
    """bench --mode wrote --json with Path.write_text after the run (IsADirectoryError, a traceback)."""
    from siamtrt.cli.fps import main

    code = main(["--model", str(tiny_model()), "--video", str(clips / "small.avi"), "--mode", "short", "--frames",
                 "2", "--warmup", "0", "--quiet", "--backend", "onnxruntime", "--json", str(ws / "adir")])
    assert code == 2 and "--json" in capsys.readouterr().err


def test_bench_mode_frames_all_and_threads_used(tiny_model, clips, monkeypatch, capsys):
    """--mode --frames all timed 60 frames (``frames or 60``), and the report said threads: null ("default
    threads") where the physical core count was used."""
    import siamtrt.benchmarks.fps_modes as fps_modes
    from siamtrt.cli.fps import main
    from siamtrt.runtime.cpu import physical_cores

    seen = {}

    def fake(model, modes, video, bbox, frames, warmup, threads, backend, progress):
        seen.update(frames=frames, threads=threads)
        return {}

    monkeypatch.setattr(fps_modes, "run_mode_fps", fake)
    monkeypatch.setattr(fps_modes, "mode_table", lambda rep: "")
    code = main(["--model", str(tiny_model()), "--video", str(clips / "small.avi"), "--mode", "short", "--frames",
                 "all", "--warmup", "1", "--quiet"])
    assert code == 0 and seen == {"frames": 10 - 1 - 1, "threads": physical_cores()}, capsys.readouterr().err


def test_bench_mode_refuses_the_options_it_ignores(tiny_model, clips, ws, capsys):
    from siamtrt.cli.fps import main

    code = main(["--model", str(tiny_model()), str(tiny_model()), "--video", str(clips / "small.avi"), "--mode",
                 "short", "--reference-frames", "3", "--precision", "fp32", "--results", str(ws / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--mode does not use --reference-frames, --precision, --results, a second --model" in err
    assert not (ws / "r").exists()


def test_modes_checks_out_before_the_run(tiny_model, bag_video, ws, monkeypatch):
    import siamtrt.benchmarks.modes as modes
    from siamtrt.runtime import Tracker

    monkeypatch.setattr(Tracker, "from_model_dir", _no_work)
    with pytest.raises(InputError, match="is a file, not a folder"):
        modes.run_modes(tiny_model(), bag_video, seeds=[0], frames=4, progress=False,
                        partial=ws / "b.csv" / "modes.partial.json")
    (ws / "out" / "modes.json").mkdir(parents=True)
    with pytest.raises(InputError, match="is a directory"):
        modes.run_modes(tiny_model(), bag_video, seeds=[0], frames=4, progress=False,
                        partial=ws / "out" / "modes.partial.json")
    with pytest.raises(InputError) as e:
        modes.run_modes(tiny_model(), bag_video, kinds=["reentr"], seeds=[0], frames=4, progress=False)
    assert "fix" not in e.value.what and "reenter" in e.value.fix


# ------------------------------------------------------------------------------------------ accuracy: short gt
def test_accuracy_refuses_a_ground_truth_shorter_than_the_video(tiny_model, clips, tmp_path):
    from siamtrt.benchmarks.accuracy import check_video_lengths, run_accuracy
    from siamtrt.runtime.sequences import load_sequences

    with pytest.raises(InputError) as e:
        run_accuracy(models=[tiny_model()], backends=["onnxruntime"], sequences=[f"{clips / 'small.avi'}:"
                                                                                 f"{clips / 'gt3.txt'}"],
                     synthetic=0, reference=False, results_root=tmp_path / "r", progress=False)
    assert "3 boxes for 10 frames" in e.value.what and e.value.evidence and e.value.fix
    assert not (tmp_path / "r").exists()  # refused before any result was written
    check_video_lengths(load_sequences([f"{clips / 'small.avi'}:{clips / 'gt10.txt'}"]))  # a matching pair passes


def test_accuracy_command_refuses_the_short_ground_truth(tiny_model, clips, tmp_path):
    r = siamtrt("accuracy", "--model", tiny_model(), "--backend", "onnxruntime", "--no-reference", "--synthetic", "0",
                "--sequence", f"{clips / 'small.avi'}:{clips / 'gt3.txt'}", "--results", tmp_path / "r", "--quiet",
                cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and "3 boxes for 10 frames" in r.stderr and "fix:" in r.stderr, r.stderr[-1500:]
    assert "Traceback" not in r.stderr and "success" not in r.stdout


# ------------------------------------------------------------------------------------------------ bench: counts
def test_bench_video_needs_two_frames_not_fewer_warmup(tiny_model, clips):
    from siamtrt.benchmarks.fps import run_fps

    with pytest.raises(InputError) as e:
        run_fps(models=[tiny_model()], video=clips / "one.avi", warmup=0, reference=False, progress=False)
    assert "at least 2" in e.value.what and "warm-up" not in e.value.what and "--warmup" not in e.value.fix
    with pytest.raises(InputError) as e:
        run_fps(models=[tiny_model()], video=clips / "small.avi", warmup=20, reference=False, progress=False)
    assert "10 frames" in e.value.what and "--warmup to 8 or less" in e.value.fix


@pytest.mark.parametrize("argv, expect", [
    (["--template-reps", "0"], "argument --template-reps: must be 1 or more"),
    (["--frames", "0"], "argument --frames: must be 1 or more"),
    (["--targets", "0"], "argument --targets: must be 1 or more"),
    (["--reference-frames", "0"], "argument --reference-frames: must be 1 or more"),
    (["--warmup", "-1"], "argument --warmup: must be 0 or more"),
])
def test_bench_counts_are_refused_at_parsing(argv, expect, capsys):
    from siamtrt.cli.fps import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and expect in capsys.readouterr().err
    assert build_parser().parse_args(["--frames", "all"]).frames == "all"


def test_bench_library_counts_give_a_fix(tiny_model, bag_video):
    from siamtrt.benchmarks.fps import run_fps

    for kw in ({"targets": 0}, {"frames": 0}, {"warmup": -1}, {"reference_frames": 0}):
        with pytest.raises(InputError) as e:
            run_fps(models=[tiny_model()], video=bag_video, progress=False, **kw)
        assert e.value.fix, kw


# ------------------------------------------------------------------------------------------- collect / report
@pytest.mark.parametrize("job, argv, expect", [
    ("collect", ["--model", "m", "--video", "v", "--out", "c.npz", "--max-samples", "0"], "--max-samples"),
    ("collect", ["--model", "m", "--video", "v", "--out", "c.npz", "--templates", "0"], "--templates"),
    ("report", ["--ref", "a", "--cand", "b", "--video", "v", "--samples", "0"], "--samples"),
    ("report", ["--ref", "a", "--cand", "b", "--video", "v", "--speed-rounds", "0"], "--speed-rounds"),
])
def test_collect_and_report_counts_are_refused_at_parsing(job, argv, expect, capsys):
    import importlib

    parser = importlib.import_module(f"siamtrt.cli.{job}").build_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args(argv)
    assert e.value.code == 2 and f"argument {expect}: must be 1 or more" in capsys.readouterr().err


def test_collect_and_report_library_counts_give_a_fix(tiny_model, bag_video, tmp_path):
    from siamtrt.calibration.collect import SourceSpec, collect
    from siamtrt.calibration.report import accuracy_report

    src = SourceSpec(bag_video, bbox=[316, 140, 112, 115])
    with pytest.raises(InputError) as e:
        collect(tiny_model(), [src], None, max_samples=0)
    assert e.value.fix
    with pytest.raises(InputError) as e:
        accuracy_report(tiny_model(), [tiny_model("siamrpn_alex_dwxcorr", seed=1)], bag_video,
                        [316, 140, 112, 115], out=tmp_path / "r", samples=0, progress=False)
    assert e.value.fix


def test_collect_empty_first_box_gives_a_fix(tiny_model, clips):
    from siamtrt.calibration.collect import SourceSpec, collect

    with pytest.raises(InputError) as e:
        collect(tiny_model(), [SourceSpec(clips / "small.avi", boxes=clips / "empty_first.txt")], None,
                max_samples=4, templates_per_source=1, progress=False)
    assert "first box is missing or empty" in e.value.what and "--bbox" in e.value.fix


def test_report_refuses_a_candidate_that_is_the_reference(tiny_model, bag_video, tmp_path, monkeypatch):
    import os

    import siamtrt.calibration.report as report

    d = tiny_model()
    monkeypatch.setattr(report, "collect", _no_work)
    monkeypatch.chdir(d.parent)
    for cand in (d, Path(str(d) + os.sep), Path(d.name)):  # the same folder however it is spelt
        with pytest.raises(InputError) as e:
            report.accuracy_report(d, [cand], bag_video, [316, 140, 112, 115], out=tmp_path / "r", progress=False)
        assert "same directory as --ref" in e.value.what and e.value.fix
    r = siamtrt("report", "--ref", d, "--cand", d, "--video", bag_video, "--bbox", BAG_BOX, "--out", tmp_path / "r",
                cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and "same directory as --ref" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def _report_data(derived):
    speed = {"search_ms": 1.0, "search_ratio": 1.0, "e2e_ms": 1.0, "e2e_ratio": 1.0, "search_ratio_1t": 1.0}
    cmp_ = {"cosine": 0.99, "sqnr_db": 30.0, "max_abs_error": 0.1}
    cands = [{"name": f"cand{i}", "dir": f"cand{i}", "precision": "int8", "derived_from_ref": der, "speed": speed,
              "accuracy": {"cls": cmp_, "loc": cmp_, "template": {"k": cmp_}, "loc_box_iou_mean": 0.9,
                           "argmax_agreement": 0.9},
              "tracking": {"iou_mean": 0.9, "iou_min": 0.5, "one_step_iou_mean": 0.95}}
             for i, der in enumerate(derived)]
    return {"ref": {"name": "ref", "dir": "ref", "precision": "fp32", "weights": "checkpoint", "speed": speed},
            "candidates": cands, "video": "v.avi", "crops": 4, "frames": 8, "threads": 2}


def test_report_title_says_a_candidate_is_not_derived_from_the_reference():
    from siamtrt.calibration.report import Report

    title = str(Report(_report_data([True, False]))).splitlines()[0]
    assert "NOT DERIVED FROM THIS REFERENCE: cand1" in title and "cand0" not in title
    assert "NOT DERIVED" not in str(Report(_report_data([True, True])))
