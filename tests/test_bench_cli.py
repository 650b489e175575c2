"""A wrong invocation of a bench script is one line on stderr and exit 2, never usage + error."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["bench", "--sink", "bogus"], ["bench", "--subscribers", "abc"],
                                  ["bench.render_cpu"], ["bench.relevance_ceiling", "--bogus"],
                                  ["bench.ratelimit", "--keys"]])
def test_wrong_bench_invocation_is_one_line(argv):
    out = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "see --help" in lines[0] and "Traceback" not in out.stderr, out.stderr
