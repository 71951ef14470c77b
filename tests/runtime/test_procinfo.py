"""The one peak-RSS figure (runtime/procinfo.py) that report workers, Ray actors and the
benchmarks report: it measures this process, and it grows with what the process touched."""

import subprocess
import sys

CHILD = """
import numpy as np
from samplecnn.runtime.procinfo import peak_rss_mb
before = peak_rss_mb()
block = np.ones(96 * 1024 * 1024 // 8)  # 96 MB, every page touched
del block
print(before, peak_rss_mb())
"""


def test_peak_rss_counts_what_the_process_touched():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    before, after = map(float, done.stdout.split())
    assert 5 < before < 500  # a Python process with numpy, in MB (not KB or bytes)
    assert after - before > 90  # the freed block still counts: it is the peak, not the current size
