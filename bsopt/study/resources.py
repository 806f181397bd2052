"""Resource monitoring of a running study: memory of the driver and its workers, disk.

Figures are sampled at most every ``interval`` seconds, recorded on the study (user attribute
``resources``: latest and peak values) and shown by ``bsopt study status``. When free disk space in
the study's folder falls below ``min_free_gb``, the runner stops launching new builds (builds in
flight finish) and says why.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bsopt.execute.base import process_rss

MB = 1 << 20


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def peak_rss() -> int:
    """This process's true peak resident size in bytes (the kernel's high-water mark, not a sample)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024  # bytes on macOS, KiB on Linux


@dataclass
class Resources:
    driver_rss_mb: float = 0.0
    workers_rss_mb: float = 0.0  # sum over live workers
    max_worker_rss_mb: float = 0.0
    artifacts_mb: float = 0.0  # the study's folder (logs, build trees, exported files)
    free_disk_gb: float = 0.0
    peak_driver_rss_mb: float = 0.0
    peak_workers_rss_mb: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


class Monitor:
    def __init__(self, workdir: Path, *, min_free_gb: float = 1.0, interval: float = 10.0):
        self.workdir, self.min_free_gb, self.interval = Path(workdir), min_free_gb, interval
        self.now = Resources()
        self._last = 0.0
        self._disk_checked = 0.0
        self._low = False

    def sample(self, worker_rss, force: bool = False) -> Resources | None:
        """New figures if ``interval`` passed (or forced), else None. ``worker_rss``: a callable giving
        the workers' resident sizes in bytes (only called when a sample is due: it reads /proc)."""
        t = time.time()
        if not force and t - self._last < self.interval:
            return None
        self._last = t
        worker_rss = worker_rss()
        r = self.now
        r.driver_rss_mb = process_rss(os.getpid()) / MB
        r.workers_rss_mb = sum(worker_rss) / MB
        r.max_worker_rss_mb = max(worker_rss, default=0) / MB
        r.artifacts_mb = dir_size(self.workdir) / MB if self.workdir.exists() else 0.0
        r.free_disk_gb = self.free_gb()
        r.peak_driver_rss_mb = max(r.peak_driver_rss_mb, r.driver_rss_mb, peak_rss() / MB)
        r.peak_workers_rss_mb = max(r.peak_workers_rss_mb, r.workers_rss_mb)
        r.updated = t
        return r

    def free_gb(self) -> float:
        probe = self.workdir if self.workdir.exists() else Path.cwd()
        return shutil.disk_usage(probe).free / (1 << 30)

    def disk_low(self) -> bool:
        """Free disk below the threshold (checked at most every few seconds)."""
        t = time.time()
        if t - self._disk_checked >= 5.0:
            self._disk_checked = t
            self._low = self.free_gb() < self.min_free_gb
        return self._low
