"""Run a measurement in a quiet window, and record how quiet it was.

    python benchmarks/quiet.py [--max-busy 0.3] [--wait 300] [--pause PID ...] [--record FILE] -- COMMAND ...

On a shared machine a timing is only as good as what else ran beside it. Before the command starts
this waits (up to ``--wait`` seconds) until the other processes keep fewer than ``--max-busy`` cores
busy (sampled from ``/proc/stat`` over one second; where there is no ``/proc``, the 1-minute load
average stands in), pauses the processes named by ``--pause`` (SIGSTOP by process id, never by name;
each gets SIGCONT when the command ends, however it ends), runs the command, and reports on stderr,
and with ``--record`` as JSON: the busy cores before, how long it waited, what it paused, the
cores the *other* processes used while the command ran (all CPU time minus the command's own) and
the load average before and after. Pause only processes you own and may stop: another user's job,
paused, loses its own timings. The command's exit code is this script's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat; None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores the machine keeps busy now (over ``seconds``); the 1-minute load average off Linux."""
    first = cpu_times()
    if first is None:
        return os.getloadavg()[0]
    time.sleep(seconds)
    second = cpu_times()
    n = os.cpu_count() or 1
    return n * (second[0] - first[0]) / max(second[1] - first[1], 1e-9)


def wait_quiet(max_busy: float, wait_s: float) -> tuple[float, float]:
    """Wait until fewer than ``max_busy`` cores are busy, at most ``wait_s`` seconds: (busy cores, seconds waited)."""
    t0 = time.monotonic()
    busy = busy_cores()
    while busy >= max_busy and time.monotonic() - t0 < wait_s:
        busy = busy_cores()
    return busy, time.monotonic() - t0


def pause(pids: list[int], sig: signal.Signals) -> list[int]:
    """Send ``sig`` to each process id that exists (never this process or its parent); the ids it reached."""
    reached = []
    for pid in pids:
        if pid in (os.getpid(), os.getppid()):
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        reached.append(pid)
    return reached


def run_quiet(command: list[str], max_busy: float, wait_s: float, pids: list[int]) -> dict:
    """Wait for a quiet machine, pause ``pids``, run ``command``, resume them; the record of how it went."""
    busy_before, waited = wait_quiet(max_busy, wait_s)
    load_before = os.getloadavg()
    paused = pause(pids, signal.SIGSTOP)
    machine0, child0 = cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        code = subprocess.call(command)
    finally:
        pause(paused, signal.SIGCONT)
    wall = time.monotonic() - t0
    machine1, child1 = cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    others = None if machine0 is None else max((machine1[0] - machine0[0]) - own, 0.0) / max(wall, 1e-9)
    return {
        "command": shlex.join(command),
        "exit_code": code,
        "wall_s": round(wall, 3),
        "max_busy": max_busy,
        "busy_cores_before": round(busy_before, 3),
        "quiet_before": busy_before < max_busy,
        "waited_s": round(waited, 1),
        "paused_pids": paused,
        "other_cores_during": None if others is None else round(others, 3),
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage=__doc__.splitlines()[2].strip())
    p.add_argument("--max-busy", type=float, default=0.3, help="start when fewer cores than this are busy")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for that at most, then run anyway")
    p.add_argument("--pause", type=int, nargs="*", default=[], metavar="PID", help="process ids to pause meanwhile")
    p.add_argument("--record", type=Path, help="also write the record as JSON to this file")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("name the command to run after --")
    # a SIGTERM (or SIGHUP) ends the run through the finally above, so paused processes are resumed
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    record = run_quiet(command, args.max_busy, args.wait, args.pause)
    if args.record is not None:
        args.record.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"quiet.py: {record['busy_cores_before']} cores busy before (limit {args.max_busy}, waited "
        f"{record['waited_s']} s), paused {record['paused_pids'] or 'none'}, other processes used "
        f"{record['other_cores_during']} cores during the {record['wall_s']} s run; load average "
        f"{record['loadavg_before']} -> {record['loadavg_after']}",
        file=sys.stderr,
    )
    return record["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
