"""Peak memory as the kernel counts it."""
from __future__ import annotations

import resource


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB: of this process, or (RUSAGE_CHILDREN) of the largest
    descendant waited for so far, workers' forked work horses included. Linux counts in KB."""
    return resource.getrusage(who).ru_maxrss / 1024
