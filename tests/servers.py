"""Real servers for tests: a throwaway PostgreSQL and a throwaway Ray cluster, on this machine only."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ PostgreSQL
def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(dirs[-1]).parent if dirs else None


class Postgres:
    """``initdb`` into a temporary directory, ``pg_ctl start`` on 127.0.0.1:<free port>, trust auth.
    As root, the server runs as the ``postgres`` system user (PostgreSQL refuses to run as root)."""

    def __init__(self):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server programs not found (Debian: apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="bsopt-pg-"))
        self.port = free_port()
        self._as = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                   "-o", f"-p {self.port} -h 127.0.0.1 -k {self.dir}", "start"])
        self._run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bsopt"])
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/bsopt"

    def _run(self, cmd: list[str]) -> None:
        subprocess.run(self._as + cmd, check=True, capture_output=True, cwd=self.dir)

    def stop(self) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------ Ray
class RayCluster:
    """``ray start --head`` with its own temporary directory, port and token (token authentication on),
    stopped with ``ray stop`` afterwards. ``env`` is what a driver needs to join it."""

    def __init__(self, num_cpus: int = 2):
        ray = shutil.which("ray")
        if ray is None:
            raise RuntimeError("the ray command is not installed (pip install 'ray[default]')")
        self.ray = ray
        self.dir = Path(tempfile.mkdtemp(prefix="bsopt-ray-", dir="/tmp"))  # Ray wants short socket paths
        self.port = free_port()
        self.token = secrets.token_hex(32)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                    "RAY_USAGE_STATS_ENABLED": "0"}
        out = subprocess.run([ray, "start", "--head", "--port", str(self.port), "--temp-dir", str(self.dir),
                              "--num-cpus", str(num_cpus), "--include-dashboard", "false", "--disable-usage-stats"],
                             env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"ray start failed: {out.stderr[-2000:]}")
        self.address = self._address(out.stdout + out.stderr)

    def _address(self, text: str) -> str:
        # "ray start --address='192.0.2.2:6390'": the head binds the machine's primary IP
        for line in text.splitlines():
            if "--address=" in line:
                return line.split("--address=")[1].strip().strip("'\"").split("'")[0]
        return f"127.0.0.1:{self.port}"

    def _processes(self):
        import psutil

        mine = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if str(self.dir) in cmd or f"--address={self.address}" in cmd:
                mine.append(p)
        return mine

    def node_id(self) -> str:
        """The head node's Ray node id, read off its raylet's command line."""
        for p in self._processes():
            for arg in p.info["cmdline"] or []:
                if arg.startswith("--node_id="):
                    return arg.split("=", 1)[1]
        raise RuntimeError("raylet not found")

    def stop(self) -> None:
        """Stop this cluster's processes only (``ray stop`` would stop every Ray instance on the machine)."""
        import psutil

        procs = self._processes()
        for p in list(procs):
            try:
                procs.extend(p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
