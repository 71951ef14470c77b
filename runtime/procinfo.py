"""What this process has used: the one owner of the peak-RSS figure that batch workers, Ray
actors and the benchmarks report."""

from __future__ import annotations

import sys


def peak_rss_mb() -> float:
    """This process's peak resident set in MB: VmHWM from /proc (Linux), else ru_maxrss (KiB on
    Linux, bytes on macOS). Unlike ru_maxrss of a child, VmHWM does not count the pages a forked
    process inherited from its parent before exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # Unix only: imported where it is needed, so this module loads everywhere

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024
