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
