"""OPE pipeline: run → files → analysis with stand-in trackers, and a reduced real run (ONNX Runtime vs torch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from siamtrt.benchmarks import metrics, results
from siamtrt.benchmarks.accuracy import Entrant, evaluate, run_accuracy, truncate
from siamtrt.runtime.sequences import load_folder_sequence
from siamtrt.errors import InputError


@pytest.fixture
def seqs(synthetic_seq, bag_sequence):
    return [truncate(load_folder_sequence(bag_sequence), 12), synthetic_seq]


def _entrant(name, factory, calls, **kw):
    def make():
        calls.append(name)
        return factory()
    return Entrant(model="standin", backend=name, precision="fp32", make_tracker=make, **kw)


def test_run_files_analysis(tmp_path, seqs, oracle_cls, stuck_cls):
    calls = []
    ents = [_entrant("oracle", lambda: oracle_cls(seqs), calls, is_reference=True),
            _entrant("noisy", lambda: oracle_cls(seqs, noise=4.0), calls),
            _entrant("stuck", stuck_cls, calls)]
    rep = evaluate(ents, seqs, tmp_path, json_out=tmp_path / "acc.json", plot_out=tmp_path / "acc.png",
                   progress=False)
    assert calls == ["oracle", "noisy", "stuck"]
    # rule 14 layout
    rdir = tmp_path / "standin" / "noisy-fp32"
    for s in seqs:
        boxes = np.loadtxt(rdir / f"{s.name}.txt", delimiter=",")
        times = np.loadtxt(rdir / f"{s.name}_time.txt")
        assert boxes.shape == (len(s), 4) and times.shape == (len(s),) and np.all(times > 0)
        np.testing.assert_allclose(boxes[0], s.gt[0], atol=1e-3)  # frame 0 = the initial box
    assert json.loads((rdir / "run.json").read_text())["backend"] == "noisy"
    sc = rep.scores()
    assert sc["oracle-fp32"].success_score == pytest.approx(20 / 21, abs=1e-9)
    assert sc["oracle-fp32"].precision_score == 1.0
    assert 0.5 < sc["noisy-fp32"].success_score < 20 / 21
    assert sc["stuck-fp32"].success_score < sc["noisy-fp32"].success_score
    # scores come from the files: recompute one sequence by hand
    boxes, _ = results.read_result(rdir, seqs[1].name)
    direct = metrics.evaluate_sequence(boxes, seqs[1].gt)
    np.testing.assert_allclose(sc["noisy-fp32"].per_sequence[seqs[1].name].success_curve, direct.success_curve)
    # reference, deltas, agreement
    ents_d = {e["label"]: e for e in rep.entries}
    assert rep.reference == "oracle-fp32" and ents_d["oracle-fp32"]["agreement"]["mean_iou"] == pytest.approx(1.0)
    assert ents_d["stuck-fp32"]["delta_success"] < 0
    # JSON valid and self-consistent, PNG written
    d = json.loads((tmp_path / "acc.json").read_text())
    for e in d["entries"]:
        assert e["success_score"] == pytest.approx(np.mean(e["success_curve"]))
        assert e["precision_score"] == pytest.approx(e["precision_curve"][20])
        assert all(0 <= v <= 1 for v in e["success_curve"] + e["precision_curve"])
        assert e["frames"] == sum(len(s) for s in seqs) and e["fps"] > 0
        assert set(e["per_sequence"]) == {s.name for s in seqs}
    assert (tmp_path / "acc.png").stat().st_size > 10_000
    assert "oracle-fp32 (ref)" in rep.summary()


def test_existing_results_are_skipped_and_force_reruns(tmp_path, seqs, oracle_cls):
    calls = []
    ent = _entrant("oracle", lambda: oracle_cls(seqs), calls)
    evaluate([ent], seqs, tmp_path, progress=False)
    rep = evaluate([ent], seqs, tmp_path, progress=False)
    assert calls == ["oracle"]  # second run: everything read from files
    assert any("2 sequence(s) read from earlier results" in n for n in rep.notes)
    # a truncated result file is incomplete → that sequence is tracked again
    bpath, _ = results.result_paths(tmp_path / "standin" / "oracle-fp32", seqs[0].name)
    bpath.write_text("\n".join(bpath.read_text().splitlines()[:3]) + "\n")
    evaluate([ent], seqs, tmp_path, progress=False)
    assert calls == ["oracle", "oracle"]
    evaluate([ent], seqs, tmp_path, force=True, progress=False)
    assert len(calls) == 3


def test_run_numbers_and_discovery(tmp_path, seqs, oracle_cls):
    calls = []
    for run in (1, 2):
        evaluate([_entrant("oracle", lambda: oracle_cls(seqs), calls, run=run)], seqs, tmp_path, progress=False)
    names = sorted(p.name for p in results.discover_runs(tmp_path, "standin"))
    assert names == ["oracle-fp32_001", "oracle-fp32_002"]


def test_reduced_real_run_ort_vs_torch(tmp_path, alex_dir, alex_ckpt, synthetic_seq, bag_sequence):
    """ONNX Runtime and the PyTorch reference on 8 frames of bag and of a synthetic sequence."""
    run_accuracy(models=[alex_dir], checkpoint=alex_ckpt, backends=["onnxruntime", "torch"],
                 sequences=[bag_sequence, synthetic_seq.source], max_frames=8, results_root=tmp_path / "res",
                 json_out=tmp_path / "a.json", plot_out=tmp_path / "a.png", threads=2, progress=False)
    d = json.loads((tmp_path / "a.json").read_text())
    labels = [e["label"] for e in d["entries"]]
    assert labels == ["torch-fp32", "onnxruntime-fp32"] and d["reference"] == "torch-fp32"
    assert d["trained"] is True and [s["frames"] for s in d["sequences"]] == [8, 8]
    for e in d["entries"]:
        assert e["fps"] > 0 and e["frames"] == 16
        assert 0 < e["success_score"] <= 20 / 21 and e["success_score"] == pytest.approx(np.mean(e["success_curve"]))
    ort = d["entries"][1]
    # same weights, same tracker code: the deployment reproduces the reference's boxes
    assert ort["agreement"]["mean_iou"] > 0.99
    assert abs(ort["delta_success"]) < 0.02
    assert (tmp_path / "a.png").is_file()
    run_dirs = sorted(p.name for p in (tmp_path / "res").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].startswith("siamrpn_alex_dwxcorr-")


def test_cli_reduced_run(tmp_path, alex_dir, synthetic_seq):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "acc.json"
    cmd = [sys.executable, "benchmarks/accuracy.py", "--model", str(alex_dir), "--no-reference", "--sequence",
           synthetic_seq.source, "--max-frames", "5", "--results", str(tmp_path / "res"), "--json", str(out),
           "--plot", str(tmp_path / "acc.png"), "--quiet"]
    r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "onnxruntime-fp32" in r.stdout and "success" in r.stdout
    d = json.loads(out.read_text())
    assert d["entries"][0]["frames"] == 5 and d["entries"][0]["success_score"] > 0
    r = subprocess.run(cmd[:-1] + ["--sequence", str(tmp_path / "nowhere"), "--quiet"], cwd=repo,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_results_are_reused_per_sequence_only_for_the_same_model_and_sequence(tmp_path, seqs, oracle_cls):
    """Each sequence's result records the model and the sequence it was tracked for: after the model changed and one
    sequence was re-run, the other sequence's old result is not reused (run.json's single fingerprint said it was);
    nor is a result for another sequence of the same name and length."""
    calls = []

    def ent(fp, on=seqs):
        return _entrant("oracle", lambda: oracle_cls(on), calls, info={"fingerprint": fp})

    evaluate([ent("A")], seqs, tmp_path, progress=False)
    evaluate([ent("B")], seqs[:1], tmp_path, progress=False)
    assert len(calls) == 2
    rep = evaluate([ent("B")], seqs, tmp_path, progress=False)
    assert len(calls) == 3 and not any("2 sequence(s) read" in n for n in rep.notes)
    rep = evaluate([ent("B")], seqs, tmp_path, progress=False)
    assert len(calls) == 3 and any("2 sequence(s) read from earlier results" in n for n in rep.notes)
    other = truncate(load_folder_sequence(seqs[0].source.split(" (")[0]), 12)
    other.gt = other.gt + 1.0  # same name, same length, other boxes
    evaluate([ent("B", [other, seqs[1]])], [other, seqs[1]], tmp_path, progress=False)
    assert len(calls) == 4


def test_a_stopped_evaluation_says_which_results_it_kept(tmp_path, seqs, oracle_cls):
    """Stopped after the reference finished: the message names the kept per-sequence results (later runs reuse
    them), not "no output was left half-written"."""
    from siamtrt.errors import Interrupted

    class Stopped:
        def init(self, frame, bbox):
            pass

        def track(self, frame):
            raise KeyboardInterrupt

    calls = []
    ents = [_entrant("oracle", lambda: oracle_cls(seqs), calls, is_reference=True),
            _entrant("stopped", Stopped, calls)]
    with pytest.raises(Interrupted) as e:
        evaluate(ents, seqs, tmp_path, json_out=tmp_path / "acc.json", progress=False)
    what = e.value.what
    assert "kept 2 finished sequence result(s)" in what and str(tmp_path / "standin" / "oracle-fp32") in what
    assert "reuses them" in what and not (tmp_path / "acc.json").exists()
    with pytest.raises(Interrupted, match="no sequence result was finished"):
        evaluate(ents[1:], seqs, tmp_path, progress=False)


def test_an_unavailable_backend_is_refused_before_any_run_unless_saved_results_cover_it(tmp_path, bag_sequence):
    """--backend onnxruntime tensorrt where TensorRT cannot run this directory (no engines here, whatever the
    machine): refused before the ONNX Runtime entrant wrote anything. Results saved earlier for every sequence are
    scored without the backend; a sequence they lack, or --force, needs it and is refused."""
    import shutil
    import sys
    from pathlib import Path

    from siamtrt.errors import BackendError

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "tiny")
    kw = dict(models=[model], sequences=[bag_sequence], reference=False, progress=False)
    with pytest.raises(BackendError, match="backend tensorrt cannot run"):
        run_accuracy(backends=["onnxruntime", "tensorrt"], max_frames=5, results_root=tmp_path / "r", **kw)
    assert not (tmp_path / "r").exists()
    # results of the same model and sequences saved under tensorrt's run folder (tracked by ONNX Runtime here)
    ort_dir = run_accuracy(backends=["onnxruntime"], max_frames=5, results_root=tmp_path / "r", **kw).entries[0]
    shutil.copytree(ort_dir["run_dir"], Path(ort_dir["run_dir"]).with_name("tensorrt-fp32"))
    rep = run_accuracy(backends=["tensorrt"], max_frames=5, results_root=tmp_path / "r", **kw)
    assert [e["label"] for e in rep.entries] == ["tensorrt-fp32"]
    assert rep.entries[0]["scores"].success_score == ort_dir["scores"].success_score
    for more in (dict(max_frames=6), dict(max_frames=5, force=True)):  # another sequence length; --force
        with pytest.raises(BackendError, match="backend tensorrt cannot run"):
            run_accuracy(backends=["tensorrt"], results_root=tmp_path / "r", **kw, **more)


def test_a_refused_run_writes_no_synthetic_sequence(tmp_path, data_dir, monkeypatch):
    """The default sequences' synthetic one was written under --results before an unavailable backend was refused:
    a refused run leaves the results folder absent."""
    import sys
    from pathlib import Path

    from siamtrt.errors import BackendError

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    monkeypatch.setenv("SIAMTRT_DATA", str(data_dir))
    with pytest.raises(BackendError, match="backend tensorrt cannot run"):
        run_accuracy(models=[make_tiny_model_dir(tmp_path / "tiny")], backends=["onnxruntime", "tensorrt"],
                     synthetic=1, synthetic_frames=6, max_frames=5, results_root=tmp_path / "r", reference=False,
                     progress=False)
    assert not (tmp_path / "r").exists()


def test_each_result_is_read_once_to_decide_what_runs(tmp_path, seqs, oracle_cls, monkeypatch):
    """run_entrant asked is_complete twice per sequence (once more to name stale results): once now, whether the
    result is reused, re-run as stale, or missing."""
    asked = []
    complete = results.is_complete
    monkeypatch.setattr(results, "is_complete", lambda rdir, s: asked.append(s.name) or complete(rdir, s))

    def ent(fp):
        return _entrant("oracle", lambda: oracle_cls(seqs), [], info={"fingerprint": fp})

    for fp, notes in (("A", 0), ("A", 1), ("B", 0)):  # missing, reused, stale (another model)
        asked.clear()
        rep = evaluate([ent(fp)], seqs, tmp_path, progress=False)
        assert sorted(asked) == sorted(s.name for s in seqs) and len(rep.notes) == notes


def test_evaluate_checks_its_report_paths_before_tracking(tmp_path, seqs, oracle_cls):
    """evaluate() is public: its --json / --plot are checked before any sequence is tracked (run_accuracy checks them
    with the inputs too; a library caller got the refusal only after the whole run)."""
    calls = []
    ent = _entrant("oracle", lambda: oracle_cls(seqs), calls)
    (tmp_path / "acc.json").mkdir()
    with pytest.raises(InputError):
        evaluate([ent], seqs, tmp_path / "res", json_out=tmp_path / "acc.json", progress=False)
    assert calls == [] and not (tmp_path / "res").exists()
    (tmp_path / "ro").mkdir(mode=0o555)  # an existing results folder that takes no files (as ../shared)
    with pytest.raises(InputError, match="does not accept new files"):
        evaluate([ent], seqs, tmp_path / "ro", progress=False)
    assert calls == []


def test_two_model_directories_of_the_same_weights_keep_their_own_results(tmp_path, seqs, oracle_cls, stuck_cls):
    """Two directories of one checkpoint and precision (another xcorr, batch or Q/DQ target) share
    ``<model>/<backend>-<precision>``: the second overwrote the first's results, and both rows (and the plot's one
    curve) showed the second's scores. Each now keeps its own run folder and label, and a rerun reuses both."""
    calls = []
    good = _entrant("ort", lambda: oracle_cls(seqs), calls, info={"fingerprint": "dir-a"})
    bad = _entrant("ort", stuck_cls, calls, info={"fingerprint": "dir-b"})
    rep = evaluate([good, bad], seqs, tmp_path, progress=False)
    assert [e["label"] for e in rep.entries] == ["ort-fp32", "ort-fp32_001"]
    assert len({e["run_dir"] for e in rep.entries}) == 2 and len(rep.scores()) == 2
    assert rep.entries[0]["scores"].success_score > rep.entries[1]["scores"].success_score
    rerun = [_entrant("ort", lambda: oracle_cls(seqs), calls, info={"fingerprint": fp}) for fp in ("dir-b", "dir-a")]
    again = evaluate(rerun, seqs, tmp_path, progress=False)
    assert len(calls) == 2 and [e["label"] for e in again.entries] == ["ort-fp32_001", "ort-fp32"]


def test_a_report_replaces_only_a_report(tmp_path, seqs, oracle_cls):
    """An existing --json / --plot that is not a JSON / PNG (notes, a frame, the other report) is refused before any
    tracking; it was replaced silently. An earlier report of the same kind is replaced, as a rerun expects."""
    calls = []
    ent = _entrant("oracle", lambda: oracle_cls(seqs), calls)
    notes, js, png = tmp_path / "notes.txt", tmp_path / "acc.json", tmp_path / "acc.png"
    notes.write_text("my notes\n")
    for kw in ({"json_out": notes}, {"plot_out": notes}, {"plot_out": js}):
        js.write_text("{}")
        with pytest.raises(InputError, match="exists and is not a"):
            evaluate([ent], seqs, tmp_path / "res", progress=False, **kw)
    assert calls == [] and notes.read_text() == "my notes\n" and js.read_text() == "{}"
    evaluate([ent], seqs, tmp_path / "res", progress=False, json_out=js, plot_out=png)
    evaluate([ent], seqs, tmp_path / "res", progress=False, json_out=js, plot_out=png)  # a rerun replaces both
    assert json.loads(js.read_text())["entries"] and png.read_bytes().startswith(b"\x89PNG")


def test_a_stopped_result_write_leaves_whole_files(tmp_path, monkeypatch):
    """Ctrl-C while a sequence's boxes are written: the earlier file stays whole (np.savetxt wrote into it directly,
    leaving a truncated box file)."""
    results.write_result(tmp_path, "seq", np.ones((5, 4)), np.ones(5))
    before = (tmp_path / "seq.txt").read_text()

    def stopped(f, rows, **kw):  # np.savetxt stopped after its first value, into a path or an open file
        f = f if hasattr(f, "write") else open(f, "w")
        f.write("1.000,")
        f.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savetxt", stopped)
    with pytest.raises(KeyboardInterrupt):
        results.write_result(tmp_path, "seq", np.zeros((5, 4)), np.zeros(5))
    assert (tmp_path / "seq.txt").read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "seq.txt", "seq_time.txt"]


def test_a_reduced_run_keeps_the_full_length_results(tmp_path, seqs, oracle_cls):
    """A ``--max-frames`` rerun of a model replaced its full-length results in place (a warning said so): it now
    writes its own run folder, and the full run, rerun, still finds its results."""
    calls = []

    def ent(on):
        return _entrant("oracle", lambda: oracle_cls(on), calls, info={"fingerprint": "A"})

    full = evaluate([ent(seqs)], seqs, tmp_path, progress=False)
    box_file = results.result_paths(full.entries[0]["run_dir"], seqs[0].name)[0]
    before = box_file.read_bytes()
    short = [truncate(s, 6) for s in seqs]
    reduced = evaluate([ent(short)], short, tmp_path, progress=False)
    assert [e["label"] for e in reduced.entries] == ["oracle-fp32_001"] and box_file.read_bytes() == before
    again = evaluate([ent(seqs)], seqs, tmp_path, progress=False)
    assert len(calls) == 2 and [e["label"] for e in again.entries] == ["oracle-fp32"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_damaged_run_record_is_a_clear_error(tmp_path, text):
    """A run.json that is not a JSON object (edited or damaged) was a JSONDecodeError / AttributeError traceback
    when a run read it to decide which folder its results go to; now an InputError naming the file."""
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(InputError, match="is not a run record") as e:
        results.read_run_info(tmp_path)
    assert "run.json" in str(e.value) and str(tmp_path) in e.value.fix
    assert results.read_run_info(tmp_path / "none") == {}
