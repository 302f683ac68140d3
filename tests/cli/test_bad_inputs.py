"""The bad-input suite (issue 20): every command, run as a user runs it, refuses bad input with exit 2, one clear
message naming the problem, no traceback, and no file touched — existing files keep their bytes and mtimes, and no
half-written output appears.

Each case runs ``python -m siamtrt JOB ...`` (the installed command's entry point) in a scratch folder holding copies
of what the case needs (a tiny model directory, a precious existing --out file); the folder is snapshotted (sha256 +
mtime of every file) before and compared after.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from cli_helpers import cli_env, siamtrt, snapshot

BAG_BOX = "316,140,112,115"


def _model(ws: Path, tiny) -> Path:
    d = ws / "model"
    if not d.exists():
        shutil.copytree(tiny(), d)
    return d


def _with_engines(ws: Path, tiny) -> Path:
    """The tiny model with engine files TensorRT cannot run (no sidecars; and here no GPU or no TensorRT)."""
    d = _model(ws, tiny)
    for name in ("template.engine", "search.engine"):
        _file(d, name, b"not an engine")
    return d


def _model_copy(ws: Path, tiny) -> Path:
    """A byte-identical copy of the tiny model (a candidate the report accepts)."""
    d = ws / "copy"
    if not d.exists():
        shutil.copytree(tiny(), d)
    return d


def _file(ws: Path, name: str, data: bytes = b"precious\n") -> Path:
    p = ws / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _leftover_part(ws: Path, name: str) -> Path:
    """``name`` whose ``name.part`` an interrupted run left (a rerun must not overwrite it)."""
    _file(ws, name + ".part", b"65 frames of an interrupted run\n")
    return ws / name


def _evil_checkpoint(ws: Path) -> Path:
    """A torch.save'd dict whose unpickling would create ws/PWNED (the payload must never run)."""
    import pickle

    marker = ws / "PWNED"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    p = ws / "evil.pth"
    p.write_bytes(pickle.dumps({"state_dict": {}, "payload": Evil()}, protocol=2))
    return p


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def _swapped(ws: Path, tiny) -> Path:
    d = _model(ws, tiny)
    (d / "template.onnx").rename(d / "tmp.onnx")
    (d / "search.onnx").rename(d / "template.onnx")
    (d / "tmp.onnx").rename(d / "search.onnx")
    return d


def _engine_without_sidecar(ws: Path) -> Path:
    return _file(ws, "m/search.engine", b"\0" * 64)


def _repo_without_models(ws: Path) -> Path:
    (ws / "repo" / "notes").mkdir(parents=True)
    return ws / "repo"


def _triton_repo_dir(ws: Path) -> Path:
    _file(ws, "repo/keep.txt")
    return ws / "repo"


# (id, builder(ws, tiny, bag) -> argv, expected text in stderr). argv items may be callables of ws.
CASES = [
    # ----------------------------------------------------------------------------------------------- track
    ("track-bbox-outside", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", "600,10,50,50"],
     "lies outside the 480x360 frame"),
    ("track-bbox-zero", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", "10,10,0,50"],
     "zero or negative size"),
    ("track-bbox-three-numbers", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", "1,2,3"],
     "four numbers"),
    ("track-bbox-words", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", "a,b,c,d"],
     "four numbers"),
    ("track-bbox-nan", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", "nan,1,20,20"],
     "non-finite"),
    ("track-no-model", lambda ws, t, v: ["track", "--model", ws / "nope", "--video", v, "--bbox", BAG_BOX],
     "does not exist"),
    ("track-model-is-file", lambda ws, t, v: ["track", "--model", _file(ws, "m.onnx"), "--video", v, "--bbox", BAG_BOX],
     "is a file, not a model directory"),
    ("track-model-lacks-search", lambda ws, t, v: ["track", "--model", _lacks_search(ws, t), "--video", v, "--bbox",
                                                   BAG_BOX], "lacks ['search.onnx']"),
    ("track-model-big-folder", lambda ws, t, v: ["track", "--model", _folder_of(ws, 30), "--video", v, "--bbox",
                                                 BAG_BOX], "'f11.txt'] ... and 18 more"),
    ("track-model-swapped", lambda ws, t, v: ["track", "--model", _swapped(ws, t), "--video", v, "--bbox", BAG_BOX],
     "swapped"),
    ("track-no-video", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", ws / "none.avi", "--bbox",
                                         BAG_BOX], "does not exist"),
    ("track-empty-video", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", _file(ws, "e.avi", b""),
                                            "--bbox", BAG_BOX], "is empty (0 bytes)"),
    ("track-undecodable-video", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video",
                                                  _file(ws, "bad.avi", b"RIFF" + b"\0" * 500), "--bbox", BAG_BOX],
     "cannot be opened"),
    ("track-camera", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", "97", "--bbox", BAG_BOX],
     "camera 97 cannot be opened"),
    ("track-empty-folder", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", _mkdir(ws, "frames"),
                                             "--bbox", BAG_BOX], "holds no images"),
    ("track-unknown-mode", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                             "--mode", "long-term"], "did you mean 'longterm'"),
    ("track-longterm-needs-export", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox",
                                                      BAG_BOX, "--mode", "longterm"], "--lost-instance-size 831"),
    ("track-unknown-backend", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                                "--backend", "onnxrt"], "unknown backend 'onnxrt'"),
    ("track-unknown-format", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                               "--out", ws / "b.txt", "--format", "xml"], "invalid choice: 'xml'"),
    ("track-max-frames-0", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                             "--max-frames", "0"], "argument --max-frames: must be 1 or more"),
    ("track-negative-threads", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                                 "--threads", "-2"], "argument --threads: must be 1 or more"),
    ("track-start-past-end", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                               "--start-frame", "196"], "--start-frame 196 is past the end"),
    ("track-out-is-dir", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                           "--out", _mkdir(ws, "outdir")], "is a directory"),
    ("track-out-under-file", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                               "--out", _file(ws, "afile") / "b.txt"], "is a file, not a folder"),
    ("track-bad-save-video-keeps-out", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox",
                                                         BAG_BOX, "--out", _file(ws, "b.txt", b"1,2,3,4\n" * 196),
                                                         "--save-video", ws / "v.gif"], "--save-video"),
    ("track-save-video-under-file", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox",
                                                      BAG_BOX, "--out", _file(ws, "b.txt"), "--save-video",
                                                      _file(ws, "x") / "v.mp4"], "is a file, not a folder"),
    ("track-out-equals-video", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                                 "--out", ws / "v.mp4", "--save-video", ws / "v.mp4"], "same file"),
    ("track-out-is-the-video", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", _copy(v, ws / "v.avi"),
                                                 "--bbox", BAG_BOX, "--out", ws / "v.avi"], "is the input"),
    ("track-save-video-is-the-video", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video",
                                                        _copy(v, ws / "v.avi"), "--bbox", BAG_BOX, "--save-video",
                                                        ws / "v.avi"], "is the input"),
    ("client-out-is-the-video", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", _copy(v, ws / "v.avi"),
                                                  "--bbox", BAG_BOX, "--out", ws / "v.avi"], "is the input"),
    ("track-show-no-display", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                                "--show"], "needs a display"),
    ("track-no-bbox", lambda ws, t, v: ["track", "--model", _model(ws, t), "--video", v], "no target box given"),
    ("track-abbreviated-option", lambda ws, t, v: ["track", "--mod", _model(ws, t), "--video", v, "--bbox", BAG_BOX],
     "required: --model"),
    # ---------------------------------------------------------------------------------------------- export
    ("export-unknown-config", lambda ws, t, v: ["export", "--config", "siamrpn_alexnet", "--out", ws / "o"],
     "unknown model config 'siamrpn_alexnet'"),
    ("export-missing-checkpoint", lambda ws, t, v: ["export", "--config", "siamrpn_alex_dwxcorr", "--checkpoint",
                                                    ws / "model.pth", "--out", ws / "o"], "does not exist"),
    ("export-out-is-file", lambda ws, t, v: ["export", "--config", "siamrpn_alex_dwxcorr", "--out", _file(ws, "o")],
     "exists and is not a directory"),
    ("export-malicious-checkpoint", lambda ws, t, v: ["export", "--config", "siamrpn_alex_dwxcorr", "--checkpoint",
                                                      _evil_checkpoint(ws), "--out", ws / "o"],
     "Python objects other than tensors, which safe loading"),
    ("export-corrupt-checkpoint", lambda ws, t, v: ["export", "--config", "siamrpn_alex_dwxcorr", "--checkpoint",
                                                    _file(ws, "junk.pth", b"\x80\x02junk" * 20), "--out", ws / "o"],
     "truncated or corrupt"),
    ("export-options-need-out", lambda ws, t, v: ["export", "--config", "siamrpn_alex_dwxcorr", "--batch", "1"],
     "give it its own --out"),
    ("export-opencv-target-unknown-option", lambda ws, t, v: ["export", "--target", "tflite"],
     "invalid choice: 'tflite'"),
    # ----------------------------------------------------------------------------------------------- build
    ("build-no-model", lambda ws, t, v: ["build", "--model", ws / "nope"], "does not exist"),
    # ------------------------------------------------------------------------------------- collect / quantize
    ("collect-no-video", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", ws / "none.avi", "--bbox",
                                           BAG_BOX, "--out", ws / "calib.npz"], "does not exist"),
    ("collect-bbox-outside", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", v, "--bbox",
                                               "900,900,10,10", "--out", ws / "calib.npz"], "outside"),
    ("collect-negative-max-frames", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", v, "--bbox",
                                                      BAG_BOX, "--max-frames", "-1", "--out", ws / "calib.npz"],
     "argument --max-frames: must be 1 or more"),
    ("collect-max-frames-1", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", v, "--bbox", BAG_BOX,
                                               "--max-frames", "1", "--out", ws / "calib.npz"],
     "--max-frames 1 leaves no frame after the first"),  # it said "bag.avi has 1 frames", after loading the model
    ("collect-out-in-model-dir", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", v, "--bbox",
                                                   BAG_BOX, "--out", ws / "model" / "search.onnx"],
     "which the job reads"),
    ("collect-out-is-a-folder", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", v, "--bbox",
                                                  BAG_BOX, "--out", _file(ws, "calib/keep.txt").parent],
     "is a folder: the calibration file would be written beside it"),
    ("collect-out-not-calibration", lambda ws, t, v: ["collect", "--model", _model(ws, t), "--video", v, "--bbox",
                                                      BAG_BOX, "--out", _file(ws, "weights.npz")],
     "exists and is not a siamtrt calibration file"),  # was replaced silently
    ("report-out-is-the-model-dir", lambda ws, t, v: ["report", "--ref", _model(ws, t), "--cand", _model_copy(ws, t),
                                                      "--video", v, "--bbox", BAG_BOX, "--out", ws / "model"],
     "which the job reads"),
    ("report-zero-threads", lambda ws, t, v: ["report", "--ref", _model(ws, t), "--cand", _model(ws, t), "--video", v,
                                              "--bbox", BAG_BOX, "--threads", "0", "--out", ws / "rep"],
     "argument --threads: must be 1 or more"),
    ("quantize-negative-fidelity-samples", lambda ws, t, v: ["quantize", "--model", _model(ws, t), "--precision",
                                                             "int8", "--calib", ws / "calib.npz", "--fidelity-samples",
                                                             "-1", "--out", ws / "q"], "--fidelity-samples >= 1"),
    ("quantize-int8-needs-calib", lambda ws, t, v: ["quantize", "--model", _model(ws, t), "--precision", "int8",
                                                    "--out", ws / "q"], "--precision int8 needs --calib"),
    ("quantize-fp16-int8-options", lambda ws, t, v: ["quantize", "--model", _model(ws, t), "--precision", "fp16",
                                                     "--method", "entropy", "--out", ws / "q"],
     "applies to --precision int8 only"),
    ("quantize-calib-not-npz", lambda ws, t, v: ["quantize", "--model", _model(ws, t), "--precision", "int8",
                                                 "--calib", _file(ws, "calib.npz", b"not a zip"), "--out", ws / "q"],
     "calib"),
    ("report-no-candidate", lambda ws, t, v: ["report", "--ref", _model(ws, t), "--cand", ws / "nope", "--video", v,
                                              "--bbox", BAG_BOX, "--out", ws / "rep"], "does not exist"),
    ("bench-negative-threads", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--threads", "-1",
                                                 "--no-save"], "threads must be a whole number of 1 or more"),
    ("track-many-zero-workers", lambda ws, t, v: ["track-many", "--model", _model(ws, t), "--videos", v, "--out",
                                                  ws / "many", "--workers", "0"],
     "argument --workers: must be 1 or more"),
    ("modes-zero-seeds", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--seeds", "0", "--out", ws / "m"],
     "argument --seeds: must be 1 or more"),
    ("accuracy-negative-synthetic", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--synthetic", "-1",
                                                      "--results", ws / "r"],
     "argument --synthetic: must be 0 or more"),
    ("serving-bench-zero-streams", lambda ws, t, v: ["serving-bench", "--model", _model(ws, t), "--streams", "4", "0",
                                                     "--json", ws / "s.json"], "argument --streams: must be 1 or more"),
    ("int8-family-out-is-a-file", lambda ws, t, v: ["int8-family", "--out", _file(ws, "f.txt")],
     "is a file, not a folder"),
    ("modes-out-is-a-file", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--out", _file(ws, "m.txt")],
     "is a file, not a folder"),
    # ------------------------------------------------------------------------------------------ serving
    ("triton-no-model", lambda ws, t, v: ["triton", "--model", ws / "nope", "--out", ws / "repo"], "does not exist"),
    ("triton-engine-without-tensorrt", lambda ws, t, v: ["triton", "--model", _model(ws, t), "--out", ws / "repo",
                                                         "--engine", ws / "model", "--tensorrt-version", "10.3"],
     "--engine and --tensorrt-version apply to --backend tensorrt only"),
    ("triton-out-not-empty", lambda ws, t, v: ["triton", "--model", _model(ws, t), "--out", _triton_repo_dir(ws)],
     "exists"),
    ("serve-no-repository", lambda ws, t, v: ["serve", "--model-repository", ws / "repo"], "does not exist"),
    ("serve-repository-without-models", lambda ws, t, v: ["serve", "--model-repository", _repo_without_models(ws)],
     "holds no Triton model"),
    ("client-no-video", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", ws / "none.avi", "--bbox",
                                          BAG_BOX, "--out", _file(ws, "b.txt")], "does not exist"),
    ("client-leftover-part", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", v, "--bbox", BAG_BOX,
                                               "--out", _leftover_part(ws, "b.txt")],
     "exists: the frames an interrupted run kept"),
    ("client-out-is-binary", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", v, "--bbox", BAG_BOX,
                                               "--out", _file(ws, "search.onnx", b"\x08\x07\x12\x00binary")],
     "exists and is not a box file"),
    ("client-bbox-zero-size", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", v, "--bbox",
                                                "316,140,0,115", "--out", ws / "b.txt"], "zero or negative size"),
    ("client-bbox-outside-frame", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", v, "--bbox",
                                                    "3160,140,112,115", "--out", ws / "b.txt"], "lies outside"),
    ("serve-startup-timeout-negative", lambda ws, t, v: ["serve", "--model-repository", ws / "repo",
                                                         "--startup-timeout", "-5"], "must be a number of seconds"),
    ("serving-bench-json-under-file", lambda ws, t, v: ["serving-bench", "--model", _model(ws, t), "--video", v,
                                                        "--json", _file(ws, "x") / "sb.json"],
     "is a file, not a folder"),
    ("client-no-server", lambda ws, t, v: ["client", "--url", "127.0.0.1:9", "--video", v, "--bbox", BAG_BOX,
                                           "--max-frames", "2", "--out", _file(ws, "b.txt")], "request failed"),
    # ------------------------------------------------------------------------------------------- inspect / job
    ("inspect-missing", lambda ws, t, v: ["inspect", ws / "nope"], "does not exist"),
    ("inspect-text-file", lambda ws, t, v: ["inspect", _file(ws, "notes.txt")], "neither a model directory"),
    ("inspect-engine-without-sidecar", lambda ws, t, v: ["inspect", _engine_without_sidecar(ws)], "has no sidecar"),
    ("unknown-job", lambda ws, t, v: ["trak", "--model", "x"], "did you mean 'track'"),
    # ------------------------------------------------------------ bench / accuracy: what they read, what they write
    ("accuracy-json-is-the-sequence-gt", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference",
                                                           "--max-frames", "5", "--sequence", _bag(ws, v), "--json",
                                                           ws / "bag" / "groundtruth_rect.txt"], "is the input"),
    ("accuracy-plot-is-a-frame", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference",
                                                   "--sequence", _bag(ws, v), "--plot",
                                                   ws / "bag" / "img" / "00000001.jpg"], "lies in"),
    ("accuracy-results-in-the-sequence", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference",
                                                           "--sequence", _bag(ws, v), "--results", ws / "bag" / "r"],
     "lies in"),
    ("accuracy-json-is-the-video-gt", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference",
                                                        "--sequence", _video_with_gt(ws, v), "--json",
                                                        ws / "vid" / "bag.txt"], "is the input"),
    ("accuracy-json-in-proc", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference", "--sequence",
                                                _bag(ws, v), "--json", "/proc/siamtrt-x.json"],
     "does not accept new files"),
    ("accuracy-results-in-proc", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference",
                                                   "--sequence", _bag(ws, v), "--results", "/proc/siamtrt-x"],
     "does not accept new files"),
    ("accuracy-json-in-the-model", lambda ws, t, v: ["accuracy", "--model", _model(ws, t), "--no-reference",
                                                     "--sequence", _bag(ws, v), "--json", ws / "model" / "a.json"],
     "lies in"),
    ("bench-json-write-protected", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--json",
                                                     _read_only(_file(ws, "shared.json"))], "is write-protected"),
    ("bench-json-in-proc", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--json",
                                             "/proc/siamtrt-x.json"], "does not accept new files"),
    ("bench-results-in-proc", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--results",
                                                "/proc/siamtrt-x"], "does not accept new files"),
    ("bench-json-in-the-model", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--json",
                                                  ws / "model" / "fps.json"], "lies in"),
    ("bench-no-checkpoint", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--checkpoint",
                                              ws / "nonexist.pth"], "does not exist"),
    ("bench-tensorrt-without-engines", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v,
                                                         "--backend", "tensorrt", "--no-save"],
     "backend tensorrt cannot run"),
    # bench --mode and accuracy refuse a backend that cannot run here before any output or tracking (--mode
    # printed its progress bar first; accuracy wrote the onnxruntime results, then failed on tensorrt)
    ("bench-mode-tensorrt-unavailable", lambda ws, t, v: ["bench", "--model", _with_engines(ws, t), "--video", v,
                                                          "--mode", "short", "--backend", "tensorrt"],
     "backend tensorrt cannot run"),
    ("accuracy-tensorrt-unavailable", lambda ws, t, v: ["accuracy", "--model", _with_engines(ws, t), "--no-reference",
                                                        "--backend", "onnxruntime", "tensorrt", "--max-frames", "3",
                                                        "--sequence", _bag(ws, v)], "backend tensorrt cannot run"),
    ("bench-mode-ignored-options", lambda ws, t, v: ["bench", "--model", _model(ws, t), "--video", v, "--mode",
                                                     "short", "--plot", ws / "p.png", "--targets", "2"],
     "--mode does not use --plot, --targets"),
    # int8-family: the data folder is checked before the first member is exported (it ran ~65 s and wrote o/ first);
    # -v is taken as by every job
    ("int8-family-no-data", lambda ws, t, v: ["int8-family", "--arch", "alex", "--members", "1", "--data", ws / "nope",
                                             "--work", ws / "w", "--out", ws / "o", "-v"],
     "lacks bag.avi and bag"),
    # modes: --set, --frames and --name checked before anything runs (raw TypeError / ast text, nan ± nan, exit 0)
    ("modes-set-unknown-key", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--set", "foo=1", "--out", ws / "m"],
     "TrackConfig has no key 'foo'"),
    ("modes-set-not-a-value", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--set", "confidence_low=abc",
                                                "--out", ws / "m"], "'abc' is not a value"),
    ("modes-set-no-value", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--set", "confidence_low",
                                             "--out", ws / "m"], "is not KEY=VALUE"),
    ("modes-too-few-frames", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--frames", "3", "--out", ws / "m"],
     "--frames 3 is too few"),
    ("modes-empty-name", lambda ws, t, v: ["modes", "--model", _model(ws, t), "--name", "", "--out", ws / "m"],
     "is not a file name stem"),
]


def _bag(ws: Path, video: Path) -> Path:
    """A writable copy of the shared bag sequence folder (img/ + groundtruth_rect.txt; the shared one is read-only,
    which alone refuses it as an output)."""
    d = ws / "bag"
    if not d.exists():
        shutil.copytree(Path(video).parent / "bag", d, copy_function=shutil.copyfile)
        for p in [d, *d.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
    return d


def _video_with_gt(ws: Path, video: Path) -> Path:
    """bag.avi with its ground truth beside it as bag.txt."""
    d = ws / "vid"
    d.mkdir(exist_ok=True)
    shutil.copyfile(Path(video).parent / "bag" / "groundtruth_rect.txt", d / "bag.txt")
    return _copy(video, d / "bag.avi")


def _read_only(p: Path) -> Path:
    p.chmod(0o444)
    return p


def _copy(src, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def _lacks_search(ws: Path, tiny) -> Path:
    d = _model(ws, tiny)
    (d / "search.onnx").unlink()
    return d


def _folder_of(ws: Path, n: int) -> Path:
    """A folder of ``n`` unrelated files: the error lists the first names, not all of them."""
    d = _mkdir(ws, "big")
    for i in range(n):
        (d / f"f{i:02d}.txt").write_text("x")
    return d


def _mkdir(ws: Path, name: str) -> Path:
    (ws / name).mkdir(parents=True, exist_ok=True)
    return ws / name


def test_the_suite_is_at_least_40_cases():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tiny_model, bag_video, tmp_path):
    name, build, expect = case
    ws = tmp_path / "ws"
    ws.mkdir()
    argv = build(ws, tiny_model, bag_video)
    before = snapshot(ws)
    r = siamtrt(*argv, cwd=ws, env=cli_env(), timeout=180)
    err = r.stderr
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], err[-1500:])
    assert expect in err, err[-1500:]
    assert "Traceback" not in err and "Traceback" not in r.stdout, err[-3000:]
    # one message: one "error: ..." block (ours) or one "siamtrt JOB: error: ..." line (argparse's)
    assert sum(line.startswith("error:") or ": error:" in line[:40] for line in err.splitlines()) == 1, err[-1500:]
    assert snapshot(ws) == before, "a file was created, modified or removed"
    assert not (ws / "PWNED").exists()


def test_port_in_use_is_refused(tiny_model, tmp_path):
    """serve on a port another program holds: refused before the server starts, naming the option to change."""
    repo = tmp_path / "repo"
    r = siamtrt("triton", "--model", tiny_model(), "--out", repo)
    assert r.returncode == 0, r.stderr
    sock, port = _busy_port()
    try:
        r = siamtrt("serve", "--model-repository", repo, "--grpc-port", port, "--http-port", port + 1
                    if port < 65535 else port - 1, timeout=120)
    finally:
        sock.close()
    assert r.returncode == 2 and f"port {port} (--grpc-port) is in use" in r.stderr and "Traceback" not in r.stderr


def test_port_in_time_wait_is_free():
    """A port whose last connections wait in TIME-WAIT (a server just stopped, serve's own readiness probe) is free
    for a new server (SO_REUSEADDR, as servers bind); one that a program listens on is refused."""
    from siamtrt.cli.serve import check_port
    from siamtrt.errors import InputError

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tritonserver binds (its TIME-WAITs inherit it)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    with pytest.raises(InputError, match="is in use"):
        check_port("127.0.0.1", port, "--http-port")
    peer = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server's side closes first: its end (local port = port) goes to TIME-WAIT
    peer.recv(1)
    peer.close()
    listener.close()
    check_port("127.0.0.1", port, "--http-port")
