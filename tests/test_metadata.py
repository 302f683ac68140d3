"""What the weights are (siamtrt.metadata ``weights``): recorded by the exporter, read from old directories, and
stated by the reports — here track.py, which warns once on random weights and says so in its summary line."""

import subprocess
import sys
from pathlib import Path

import pytest

from siamtrt.errors import ModelDirError
from siamtrt.metadata import untrained_warning, weights_kind, weights_line

REPO = Path(__file__).resolve().parents[1]


def test_weights_kind_new_and_old_directories():
    assert weights_kind({"weights": "checkpoint", "checkpoint_sha256": "ab" * 32}) == "checkpoint"
    # directories written before the key: "trained" meant "loaded from a file"
    assert weights_kind({"trained": True, "checkpoint_sha256": "ab" * 32}) == "checkpoint"
    assert weights_kind({"trained": False, "checkpoint_sha256": "random-seed-2"}) == "random-realistic"
    assert weights_kind({"trained": False, "checkpoint_sha256": "random-seed-2-matching"}) == "random-matching"
    with pytest.raises(ModelDirError, match="unknown weights kind"):
        weights_kind({"weights": "trained"})
    assert weights_line({"weights": "checkpoint", "checkpoint_sha256": "0123456789abcdef" * 4}).startswith(
        "checkpoint (sha256 0123456789abcdef")
    assert "seed 2" in weights_line({"weights": "random-realistic", "checkpoint_sha256": "random-seed-2"})
    assert untrained_warning({"weights": "checkpoint", "checkpoint_sha256": "x"}) == ""


def test_track_cli_warns_once_on_random_weights(tmp_path, bag_video):
    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "tiny")
    r = subprocess.run([sys.executable, str(REPO / "runtime" / "track.py"), "--model", str(model), "--video",
                        str(bag_video), "--bbox", "316,140,112,115", "--max-frames", "5", "--no-progress"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("SEEDED RANDOM WEIGHTS") == 1
    first = r.stdout.splitlines()[0]
    assert first.startswith("tracked 5 frames") and "[weights: random-realistic (seed 0" in first
    assert "UNTRAINED" in first


def test_tracking_one_model_again_warns_once(tmp_path, bag_video, caplog, monkeypatch):
    """A job that tracks the same random-weights model several times (``report``: the reference, then each
    candidate, a copy with the same weights) warns once, not once per run (it printed the warning five times, then
    once per directory)."""
    import logging
    import shutil

    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir
    import siamtrt.runtime.run as run

    monkeypatch.setattr(run, "_WARNED_UNTRAINED", set())  # other tests of this process tracked these weights
    model = make_tiny_model_dir(tmp_path / "tiny")
    copy = shutil.copytree(model, tmp_path / "copy")  # as an FP16 / INT8 directory carries its source's weights
    with caplog.at_level(logging.WARNING):
        for m in (model, model, copy):
            run.track_video(m, bag_video, bbox=(316, 140, 112, 115), max_frames=2, progress=False)
    assert sum("SEEDED RANDOM WEIGHTS" in r.getMessage() for r in caplog.records) == 1


def test_empty_or_truncated_onnx_is_named_as_such(tmp_path):
    """A 0-byte search.onnx (an interrupted copy) is reported as empty, not as "not written by siamtrt's exporter";
    bytes protobuf reads as an empty model are "not an ONNX model"; both say to copy again or re-export."""
    from siamtrt.metadata import read_onnx_metadata

    p = tmp_path / "m" / "search.onnx"
    p.parent.mkdir()
    p.write_bytes(b"")
    with pytest.raises(ModelDirError) as e:
        read_onnx_metadata(p)
    msg = str(e.value)
    assert "is empty (0 bytes)" in msg and "copy it again" in msg and "siamtrt export --config" in msg
    assert "lacks siamtrt metadata" not in msg and "exporter" not in msg
    p.write_bytes(b"\x08\x00")  # a valid protobuf varint: parses as a ModelProto without a graph
    with pytest.raises(ModelDirError, match="not an ONNX model") as e:
        read_onnx_metadata(p)
    assert "lacks siamtrt metadata" not in str(e.value) and "copy it again" in str(e.value)


def test_metadata_reader_matches_onnx_without_it(tmp_path, monkeypatch):
    """read_onnx_metadata parses the protobuf wire format itself (the runtime deploys without the onnx package): it
    returns what onnx reads, unicode and foreign keys included, and a file cut anywhere is a ModelDirError."""
    import onnx

    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    from siamtrt.metadata import decode, read_onnx_metadata, set_onnx_metadata

    path = make_tiny_model_dir(tmp_path / "tiny") / "search.onnx"
    model = onnx.load(str(path))
    model.metadata_props.add(key="other.tool", value="kept")
    set_onnx_metadata(model, dict(read_onnx_metadata(path), note="Zürich → 東京"))
    onnx.save(model, str(path))
    expected = decode({p.key: p.value for p in onnx.load(str(path)).metadata_props})
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert read_onnx_metadata(path) == expected and expected["note"] == "Zürich → 東京"
    data = path.read_bytes()
    for cut in (1, 2, 3, 16, len(data) // 3, len(data) // 2, len(data) - 40, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelDirError, match="not a readable ONNX|not an ONNX model|lacks siamtrt metadata"):
            read_onnx_metadata(path)


def test_metadata_reader_skips_unknown_fields_and_refuses_unreadable_files(tmp_path, monkeypatch):
    """A metadata entry carrying a field besides key / value (valid protobuf: onnx keeps it) was a TypeError
    traceback; an OSError while reading (permissions, a file system that cannot serve it) was one too: read as onnx
    does, or refused as ModelDirError (exit 2)."""
    import builtins

    import onnx

    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    import siamtrt.metadata as metadata

    path = make_tiny_model_dir(tmp_path / "tiny") / "template.onnx"
    entry = b"\x0a\x01x" + b"\x12\x01y" + b"\x18\x01" + b"\x25\x00\x00\x00\x00"  # key, value, a varint, a fixed32
    path.write_bytes(path.read_bytes() + bytes([14 << 3 | 2, len(entry)]) + entry)
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert props["x"] == "y" and metadata._onnx_header(path)[2] == props
    assert metadata.read_onnx_metadata(path)["arch"]

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(builtins, "open", refused)
    with pytest.raises(ModelDirError, match="cannot be read") as e:
        metadata.read_onnx_metadata(path)
    assert "Permission denied" in e.value.evidence and "permissions" in e.value.fix


def test_inspect_refuses_a_graph_damaged_inside(tmp_path):
    """The metadata reader reads the header only, so a graph damaged inside passes ModelDir.open; inspect then loads
    the graph: a ModelDirError with the re-export fix (was a DecodeError traceback)."""
    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    from siamtrt.metadata import _fields
    from siamtrt.runtime.inspection import model_dir_report

    d = make_tiny_model_dir(tmp_path / "tiny")
    data = bytearray((d / "search.onnx").read_bytes())
    start = next(v[0] for f, v in _fields(data, 0, len(data)) if f == 7)  # the graph's first byte
    data[start] = 0x07  # field 0, wire type 7: no protobuf parser accepts it
    (d / "search.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="not a readable ONNX graph") as e:
        model_dir_report(d)
    assert "re-export" in e.value.fix
