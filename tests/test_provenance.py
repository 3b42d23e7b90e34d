"""Provenance names the machine well enough to tell whether two runs did the same arithmetic."""

from __future__ import annotations

from pathlib import Path

import torch

from latentshift.record import provenance
from latentshift.report import pages as report


def test_the_machine_names_its_cpu_and_the_kernels_torch_uses():
    info = provenance.machine()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    if Path("/proc/cpuinfo").is_file():
        model = info["cpu_model"]
        assert isinstance(model, str) and model and model in Path("/proc/cpuinfo").read_text()


def test_the_machine_line_shows_the_cpu_when_the_record_has_it():
    info = {
        "cpu_cores": 2,
        "cpu_model": "Intel(R) Xeon(R) Processor",
        "torch_cpu_capability": "AVX512",
        "memory_gib": 23.5,
        "torch": "2.13.0+cpu",
        "torch_threads": 2,
        "cuda": False,
    }
    assert report.machine_text(info) == (
        "2 CPU cores (Intel(R) Xeon(R) Processor, AVX512), 23.5 GiB memory, "
        "torch 2.13.0+cpu on 2 threads, no GPU"
    )
    # records made before these keys existed read as they did
    old = {k: v for k, v in info.items() if k not in ("cpu_model", "torch_cpu_capability")}
    assert report.machine_text(old) == (
        "2 CPU cores, 23.5 GiB memory, torch 2.13.0+cpu on 2 threads, no GPU"
    )


def test_a_record_waiting_in_results_does_not_make_the_next_run_dirty(tmp_path):
    import subprocess

    from latentshift.record import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert provenance.dirty_paths(tmp_path) == ""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo.json").write_text("{}")  # a record made, not yet committed
    (tmp_path / "README.md").write_text("numbers from it\n")
    assert provenance.dirty_paths(tmp_path) == ""
    (tmp_path / "lib" / "code.py").write_text("x = 2\n")  # changed code is dirty
    assert "lib/code.py" in provenance.dirty_paths(tmp_path)
