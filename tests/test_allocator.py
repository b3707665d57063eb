"""keep_freed_memory: after it, a freed large tensor's pages are reused by the next one instead
of being page-faulted in afresh (what made every zoo training step pay ~10,000 faults)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_FAULTS = """
import resource, sys, torch
from nngraph.train.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()  # took effect; twice is harmless
for _ in range(2):  # the first round grows the heap; the second should reuse it
    torch.ones(16 * 2**20).sum()  # 64 MiB written, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_freed_pages_are_reused_instead_of_faulted_in_again() -> None:
    pages = 16 * 2**20 * 4 // 4096
    default = _faults("default")  # glibc hands 64 MiB back and faults it in again
    if default < pages // 20:
        pytest.skip(f"only {default} faults without the setting: huge pages or a preloaded malloc")
    assert _faults("keep") < default // 10
