"""The installed ``siamtrt`` command: one subcommand per job, each the very parser and main of its checkout script."""

from __future__ import annotations

import re
import subprocess
import sys


import pytest

from cli_helpers import REPO, cli_env, siamtrt
from siamtrt.cli.main import JOBS


def test_console_script_points_at_the_dispatcher():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"siamtrt": "siamtrt.cli.main:main"}


def test_help_lists_every_job():
    r = siamtrt("--help")
    assert r.returncode == 0
    for job in JOBS:
        assert re.search(rf"^  {re.escape(job)} +\S", r.stdout, re.M), job
    assert "(not installed)" not in r.stdout
    assert "(serve: 0, a server stopped on request)" in r.stdout  # serve's Ctrl-C is not an interruption
    assert siamtrt().returncode == 2  # no job: usage and exit 2


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_job_has_verbose(job):
    """README and ``siamtrt --help``: every job has -v/--verbose (serving-bench, accuracy, bench, modes,
    make-synthetic, int8-family and quantize refused it; track-many had only --verbose)."""
    r = siamtrt(job, "--help")
    assert r.returncode == 0 and "-v, --verbose" in r.stdout, (job, r.stderr[-500:])


def test_version_and_unknown_job():
    r = siamtrt("--version")
    assert r.returncode == 0 and r.stdout.startswith("siamtrt ")
    r = siamtrt("quantise")
    assert r.returncode == 2 and "did you mean 'quantize'" in r.stderr


@pytest.mark.parametrize("job", sorted(j for j, (_, s) in JOBS.items() if s))
def test_job_and_checkout_script_share_one_parser(job):
    """``siamtrt JOB --help`` and ``python SCRIPT --help`` print the same help (only the program name differs)."""
    script = JOBS[job][1]
    a = siamtrt(job, "--help")
    b = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                       env=cli_env(), cwd=REPO, timeout=120)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)

    def norm(text, prog):  # the program name appears in the usage block only; argparse re-wraps around it
        usage, _, rest = text.partition("\n\n")
        return re.sub(r"\s+", " ", usage.replace(prog, "PROG")), rest

    assert norm(a.stdout, f"siamtrt {job}") == norm(b.stdout, script.split("/")[-1])


@pytest.mark.parametrize("job", ["serve", "client", "inspect"])
def test_new_jobs_have_help(job):
    r = siamtrt(job, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: siamtrt {job}")


def test_help_needs_no_torch():
    """``siamtrt --help`` / ``siamtrt export --help`` on a machine without torch (style rule 1)."""
    code = ("import sys; sys.modules['torch'] = None; from siamtrt.cli.main import main; "
            "assert main(['--help']) == 0; sys.exit(main(['export', '--help']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--checkpoint" in r.stdout


def test_python_dash_m_siamtrt_runs_the_same_job(tiny_model, bag_video, tmp_path):
    """The console script, python -m siamtrt and runtime/track.py write the same boxes."""
    outs = []
    for i, cmd in enumerate(([sys.executable, "-m", "siamtrt", "track"], [sys.executable, str(REPO / "runtime" /
                                                                                            "track.py")])):
        out = tmp_path / f"b{i}.txt"
        r = subprocess.run(cmd + ["--model", str(tiny_model()), "--video", str(bag_video), "--bbox",
                                  "316,140,112,115", "--max-frames", "5", "--out", str(out), "--no-progress"],
                           capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 5


def test_third_party_warnings_only_with_verbose(tiny_model, tmp_path):
    """OpenCV's [ WARN ] lines (a camera index that does not open) are hidden unless --verbose."""
    args = ["track", "--model", tiny_model(), "--video", "97", "--bbox", "1,1,10,10"]
    quiet, loud = siamtrt(*args, cwd=tmp_path), siamtrt(*args, "--verbose", cwd=tmp_path)
    assert quiet.returncode == loud.returncode == 2
    assert "WARN" not in quiet.stderr and "camera 97 cannot be opened" in quiet.stderr
    assert "WARN" in loud.stderr  # what was hidden is really there


def test_progress_in_a_log_is_plain_lines(tiny_model, bag_video, tmp_path):
    """Progress written to a log (stderr not a terminal): one plain line per step of the job's phase, no tqdm
    carriage returns or escape codes (every library bar goes through siamtrt.progress)."""
    r = siamtrt("collect", "--model", tiny_model(), "--video", bag_video, "--bbox", "316,140,112,115", "--out",
                tmp_path / "calib.npz", "--max-frames", "8", "--max-samples", "4", "--templates", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "collect bag.avi: 0/8 frames started" in r.stderr and "collect bag.avi: 8/8 frames done" in r.stderr
    assert "\r" not in r.stderr and "\x1b[" not in r.stderr, r.stderr[-1500:]
