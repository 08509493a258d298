"""A run's output folder is written whole: checked before the work, replaced in one step, never mixed.

The cases are issue 18's reproductions: kills and errors during the write, an
output path that is a file, a folder holding other files, a full disk, SIGTERM.
"""
import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import recon.batches
import recon.io.run_folder
from recon.cli import main
from recon.errors import InputError
from recon.io import atomic_outputs
from recon.io.atomic import HOST, TEMPORARY_PREFIX
from recon.io.run_folder import RunFolder


def _ended_pid() -> int:
    """The PID of a process that has ended (the kernel does not reuse it at once)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _scan(tmp_path):
    yy, xx = np.mgrid[:32, :32] - 15.5
    image = np.where(xx**2 + yy**2 < 144, 40.0, -1000.0)
    path = tmp_path / "scan.npy"
    np.save(path, np.stack([image, image[::-1]]))
    return path


def _ct(scan, out, *extra):
    return main(["ct", "--method", "fbp", "--projections", "12", str(scan), "-o", str(out), "--quiet", *extra])


def _hidden(folder):
    parent = folder.parent if folder.parent.is_dir() else folder.parent.parent
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_second_run_replaces_the_first_as_a_whole(tmp_path):
    scan, out = _scan(tmp_path), tmp_path / "out"
    assert _ct(scan, out) == 0
    assert _ct(scan, out, "--method", "sirt") == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["method"] == "sirt"
    assert sorted(p.name for p in out.iterdir()) == sorted([*(os.path.basename(f) for f in report["files"]),
                                                            "metrics.json"])
    assert all(os.path.exists(f) for f in report["files"])
    assert _hidden(out) == []


def test_an_interrupted_write_leaves_the_earlier_run_intact(tmp_path, monkeypatch):
    scan, out = _scan(tmp_path), tmp_path / "out"
    assert _ct(scan, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("recon.panel.save_panel", interrupted)  # after the volume is written
    assert _ct(scan, out, "--projections", "30") == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _hidden(out) == []


def test_sigterm_is_handled_like_ctrl_c(tmp_path, monkeypatch, capsys):
    scan, out = _scan(tmp_path), tmp_path / "out"

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(recon.batches, "reconstruct_batches", terminated)
    monkeypatch.setattr("recon.pipeline.reconstruct_batches", terminated, raising=False)
    assert _ct(scan, out) == 143
    assert "recon: terminated" in capsys.readouterr().err
    assert not out.exists() and _hidden(out) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the run


def test_a_killed_process_sigterm_exit_status(tmp_path):
    """A real SIGTERM from outside, while the run reconstructs: status 143, nothing written."""
    scan, out = _scan(tmp_path), tmp_path / "out"
    code = ("import sys, time, recon.batches\n"
            "def slow(*a, **k):\n"
            "    print('started', flush=True); time.sleep(60)\n"
            "recon.batches.reconstruct_batches = slow\n"
            "from recon.cli import main\n"
            f"sys.exit(main(['ct', '--method', 'fbp', {str(scan)!r}, '-o', {str(out)!r}, '--quiet']))\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143 and "recon: terminated" in err
    assert not out.exists() and _hidden(out) == []


def _no_reconstruction(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("reconstruction started before the output was checked")

    monkeypatch.setattr(recon.batches, "reconstruct_batches", refuse)


@pytest.mark.parametrize("case", ["file", "inside a file", "foreign files", "input inside", "disk full"])
def test_output_problems_are_found_before_the_work(tmp_path, monkeypatch, capsys, case):
    scan, out = _scan(tmp_path), tmp_path / "out"
    fragment = {"file": "is a file, not an output folder", "inside a file": "cannot create its folder", "foreign files": "holds files that are not a recon run",
                "input inside": "the input lies inside the output folder", "disk full": "MB are free there"}[case]
    if case == "file":
        out.write_text("not a folder")
    elif case == "inside a file":
        (tmp_path / "plain").write_text("a file")
        out = tmp_path / "plain" / "out"
    elif case == "foreign files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "input inside":
        out.mkdir()
        scan = _scan(out)
    else:
        monkeypatch.setattr(recon.io.run_folder.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    _no_reconstruction(monkeypatch)
    assert _ct(scan, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recon: error:") and fragment in err and "\n" not in err
    assert _hidden(out) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_destination_is_refused_before_the_work(tmp_path, monkeypatch, capsys):
    scan, parent = _scan(tmp_path), tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        _no_reconstruction(monkeypatch)
        assert _ct(scan, parent / "out") == 2
        assert "cannot write there" in capsys.readouterr().err
    finally:
        parent.chmod(0o700)


def test_leftovers_of_ended_processes_are_removed(tmp_path):
    destination = tmp_path / "out"
    dead, alive = _ended_pid(), os.getpid()
    stale = tmp_path / f".out.staging-{dead}@{HOST}-0000"
    running = tmp_path / f".out.staging-{alive}@{HOST}-0000"
    elsewhere = tmp_path / f".out.staging-{dead}@another.host-0000"
    for folder in (stale, running, elsewhere):
        folder.mkdir()
    folder = RunFolder.open(destination, [], 0)
    assert not stale.exists() and running.exists() and elsewhere.exists()
    folder.discard()
    assert not folder.path.exists() and not destination.exists()

    temp = tmp_path / "files" / f"{TEMPORARY_PREFIX}{dead}@{HOST}-0000-a.npy"
    temp.parent.mkdir()
    temp.write_bytes(b"partial")
    with atomic_outputs([tmp_path / "files" / "b.npy"]) as (path,):
        np.save(path, np.zeros(2))
    assert sorted(p.name for p in temp.parent.iterdir()) == ["b.npy"]


def test_commit_swaps_in_one_step(tmp_path):
    destination = tmp_path / "out"
    first = RunFolder.open(destination, [], 0)
    (first.path / "a.npy").write_bytes(b"1")
    (first.path / "metrics.json").write_text(json.dumps({"files": [str(first.final(first.path / "a.npy"))]}))
    first.commit()
    second = RunFolder.open(destination, [], 0)
    (second.path / "b.npy").write_bytes(b"2")
    assert sorted(p.name for p in destination.iterdir()) == ["a.npy", "metrics.json"]  # until the commit
    second.commit()
    assert sorted(p.name for p in destination.iterdir()) == ["b.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_open_refuses_what_it_cannot_replace(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{not json")
    with pytest.raises(InputError, match="metrics.json"):
        RunFolder.open(tmp_path / "out", [], 0)
