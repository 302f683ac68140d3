"""benchmarks/modes.py: strict JSON, NAME.partial.json removed after a complete run and named when interrupted."""

from __future__ import annotations

import json

import pytest

REPORT = {"model": "m", "arch": "alex", "weights": "stand-in", "constants": {}, "frames": 80, "seeds": [0],
          "scenarios": {}, "results": {"distractor": {"short": [float("nan")]}},
          "details": {"distractor": {"short": [{"success": float("nan"), "seed": 0}]}},
          "median_frame_ms": {"short": float("nan")}}


def _no_nan(text):
    def refuse(c):
        raise ValueError(f"not strict JSON: {c}")
    return json.loads(text, parse_constant=refuse)


def test_report_is_strict_json(tmp_path):
    """A sequence without scored frames is NaN: written as null (modes.json held a bare NaN)."""
    from siamtrt.benchmarks.modes import write_report

    jpath, _ = write_report(REPORT, tmp_path, "m")
    assert _no_nan(jpath.read_text())["results"]["distractor"]["short"] == [None]


def test_partial_file_removed_after_a_run_and_named_when_interrupted(tmp_path, monkeypatch, capsys):
    import siamtrt.benchmarks.modes as modes
    from siamtrt.cli.modes import main
    from siamtrt.errors import Interrupted

    def fake_run(*a, partial=None, **k):
        modes.dump_json(partial, {"done": ["distractor", 0]})
        return REPORT

    monkeypatch.setattr(modes, "run_modes", fake_run)
    argv = ["--model", str(tmp_path / "model"), "--background", "bg.avi", "--out", str(tmp_path / "o"), "--name", "m",
            "--scenarios", "distractor"]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["m.json", "m.png"]  # no m.partial.json left

    def stopped(*a, partial=None, **k):
        modes.dump_json(partial, {"done": ["distractor", 0]})
        raise KeyboardInterrupt

    monkeypatch.setattr(modes, "run_modes", stopped)
    with pytest.raises(Interrupted, match="m.partial.json"):
        main(argv)
