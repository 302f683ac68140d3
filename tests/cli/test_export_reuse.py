"""One default export location (siamtrt/locations.py): ``siamtrt export`` without --out writes where ``siamtrt
bench`` looks, stamped so the benchmark reuses it, and a second ``siamtrt export`` reuses it too (issue 23 item 7)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from siamtrt.benchmarks import variants
from siamtrt.locations import default_model_dir


def test_one_default_directory(tmp_path):
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"weights")
    for kw in ({}, {"seed": 3}, {"checkpoint": ckpt}):
        assert variants.cache_dir_for("siamrpn_alex_dwxcorr", kw.get("checkpoint"), "models", seed=kw.get("seed", 0)) \
            == default_model_dir("siamrpn_alex_dwxcorr", kw.get("checkpoint"), seed=kw.get("seed", 0))
    assert default_model_dir("siamrpn_alex_dwxcorr") == Path("models/siamrpn_alex_dwxcorr-random")
    assert default_model_dir("siamrpn_alex_dwxcorr", random_heads="matching").name.endswith("-random-matching")
    assert default_model_dir("SiamRPNotb", ckpt).name == "SiamRPNotb-" + __import__("hashlib").sha256(
        b"weights").hexdigest()[:8]


def test_export_then_bench_reuses_it(monkeypatch, tmp_path, tiny_model, capsys):
    """The exporter is replaced by a copy of a tiny model (the real one takes minutes); what is tested is where it
    writes, the stamp, and that neither the benchmark nor a second export exports again."""
    import shutil

    pytest.importorskip("torch", reason="the export command imports the exporter (torch)")
    import siamtrt.export.onnx as onnx_mod
    from siamtrt.cli import export as export_cli

    calls = []

    def fake_export(config, out, **kw):
        calls.append(Path(out))
        shutil.copytree(tiny_model(), out, dirs_exist_ok=True)
        return SimpleNamespace(out_dir=Path(out), template_path=Path(out) / "template.onnx", seconds=0.0,
                               search_path=Path(out) / "search.onnx", weights="random-realistic", trained=False,
                               table=lambda: "(table)")

    monkeypatch.setattr(onnx_mod, "export_model", fake_export)
    monkeypatch.chdir(tmp_path)
    assert export_cli.main(["--config", "siamrpn_alex_dwxcorr"]) == 0
    out = Path("models/siamrpn_alex_dwxcorr-random")
    assert calls == [out] and (out / variants.CACHE_STAMP).is_file()
    assert export_cli.main(["--config", "siamrpn_alex_dwxcorr"]) == 0  # second time: reused, not exported
    assert calls == [out] and "reused" in capsys.readouterr().out
    monkeypatch.setattr(onnx_mod, "export_model", lambda *a, **k: pytest.fail("the benchmark exported again"))
    assert variants.ensure_exported("siamrpn_alex_dwxcorr", cache_root="models") == out
    # non-default options need their own --out (the default folder is the one the benchmarks reuse and replace)
    monkeypatch.setattr(onnx_mod, "export_model", fake_export)
    assert export_cli.main(["--config", "siamrpn_alex_dwxcorr", "--batch", "1"]) == 2
    assert "give it its own --out" in capsys.readouterr().err and calls == [out]
    assert export_cli.main(["--config", "siamrpn_alex_dwxcorr", "--batch", "1", "--out", "models/b1"]) == 0
    assert (Path("models/b1") / "search.onnx").is_file() and not (Path("models/b1") / variants.CACHE_STAMP).exists()
