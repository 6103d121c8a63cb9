"""`homeiq run` as a real subprocess, configured through the environment: what a user
runs, so tests of restarts, crashes (``kill -9``) and signals test the real thing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.wait import async_wait_until


class HomeIQProcess:
    """One ``homeiq run`` with its log in ``<data_dir>/../homeiq.log`` (appended to, so
    restarts of the same data directory share one log)."""

    def __init__(self, url: str, token: str, data_dir: Path, **env: str) -> None:
        token_file = data_dir.parent / "ha_token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        self.data_dir = data_dir
        self.log_path = data_dir.parent / "homeiq.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEIQ_")}
        self.env.update(
            HOMEIQ_HA_URL=url,
            HOMEIQ_HA_TOKEN_FILE=str(token_file),
            HOMEIQ_DATA_DIR=str(data_dir),
            HOMEIQ_BATCH_MAX_AGE_S="0.2",
            HOMEIQ_API_PORT="0",  # the API on any free port: never one two runs share
        )
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (again, after a stop or a kill) on the same data directory."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "homeiq.cli", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for_log(self, text: str, timeout_s: float = 30.0, count: int = 1) -> None:
        """Wait until ``text`` appears ``count`` times in the log."""

        def seen() -> bool:
            if self.log().count(text) >= count:
                return True
            assert self.proc is not None and self.proc.poll() is None, (
                f"homeiq exited early:\n{self.log()}"
            )
            return False

        await async_wait_until(
            seen,
            timeout=timeout_s,
            interval=0.1,
            message=lambda: f"no {text!r} (x{count}) in log:\n{self.log()}",
        )

    def kill(self) -> None:
        """``kill -9``: no flush, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
