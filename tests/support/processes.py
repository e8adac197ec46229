"""Real processes of the app, as an operator starts them (`python bot.py worker`), to kill with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worker(env: dict, log: Path, workers: int = 1) -> subprocess.Popen:
    """`python bot.py worker`, its output appended to `log`."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "worker", "--workers", str(workers)],
        cwd=ROOT,
        env={**os.environ, **env, "DOTENV_PATH": os.devnull},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> None:
    """Stop it gracefully (huey finishes what it runs), killed if it does not within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the worker's graceful stop, as systemd and docker send it
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no cleanup, no goodbye, as when the machine's OOM killer or a power cut strikes."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)
