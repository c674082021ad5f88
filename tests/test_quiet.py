"""benchmarks/quiet.py: the command runs, its exit code passes through, paused processes are resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

QUIET = Path(__file__).resolve().parents[1] / "benchmarks" / "quiet.py"


def _state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    raise AssertionError(f"no State in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads process states from /proc (Linux)")
def test_quiet_runs_records_and_resumes(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = tmp_path / "quiet.json"
        probe = f"import sys; sys.exit(3 if open('/proc/{other.pid}/status').read().count('(stopped)') else 4)"
        cmd = [sys.executable, str(QUIET), "--max-busy", "1000", "--wait", "0", "--pause", str(other.pid)]
        done = subprocess.run(
            [*cmd, "--record", str(record), "--", sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, done.stderr  # the command saw the other process stopped, and its code came back
        rec = json.loads(record.read_text())
        assert rec["exit_code"] == 3 and rec["paused_pids"] == [other.pid] and rec["quiet_before"]
        assert rec["other_cores_during"] >= 0 and len(rec["loadavg_after"]) == 3
        assert "quiet.py:" in done.stderr
        assert _state(other.pid) != "T"  # resumed
    finally:
        other.kill()
        other.wait()
