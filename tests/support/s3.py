"""A real S3 API for tests: moto's standalone server (`moto_server`) on loopback.

    server = MotoServer(log_path)
    server.start()                    # a free 127.0.0.1 port; answers in about a second
    server.client()                   # a boto3 S3 client with dummy credentials
    server.env()                      # the same, as AWS_* variables for code that uses
                                      # boto3's defaults (monkeypatch.setenv each)
    server.close()

Fixtures: `s3_server` (one server per session) and `s3_bucket` (a fresh bucket per test,
emptied and removed after, yielded as ``(client, bucket_name)``). Registered in
tests/conftest.py. Tests using them carry ``pytest.mark.s3``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.components import missing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

START_TIMEOUT_S = 20.0
REGION = "us-east-1"
ACCESS_KEY_ID = SECRET_ACCESS_KEY = "testing"  # moto accepts anything


def moto_server_command() -> list[str] | None:
    """How to run moto's server from this interpreter's environment (None if absent)."""
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script)]
    # moto[server] brings flask; plain moto has no server to run.
    if importlib.util.find_spec("moto") and importlib.util.find_spec("flask"):
        return [sys.executable, "-m", "moto.server"]
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    """One moto_server process; its output goes to ``log_path``."""

    def __init__(self, log_path: Path, command: list[str] | None = None) -> None:
        self.log_path = log_path
        self.command = command or moto_server_command() or ["moto_server"]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)

    @property
    def endpoint_url(self) -> str:
        """Where the S3 API answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start on a free port and wait until it answers HTTP."""
        for _attempt in range(3):  # another process may take the free port first
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [*self.command, "-H", "127.0.0.1", "-p", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(timeout_s):
                return
            self.close()
        raise RuntimeError(f"moto_server did not start; its log:\n{self.log_tail()}")

    def _wait_ready(self, timeout_s: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/", timeout=1):
                    return True
            except urllib.error.HTTPError:
                return True  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def client(self) -> S3Client:
        """A boto3 S3 client for this server with dummy credentials."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def env(self) -> dict[str, str]:
        """AWS_* variables that point boto3's defaults at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }


def _missing(reason: str) -> NoReturn:
    missing(reason, ".venv/bin/pip install 'moto[server]'")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A running moto_server for the whole session (tests use their own buckets)."""
    command = moto_server_command()
    if command is None:
        _missing("moto_server (moto[server]) is not installed")
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto_server.log", command)
    try:
        server.start()
        yield server
    finally:
        server.close()
        atexit.unregister(server.close)


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> Iterator[tuple[S3Client, str]]:
    """A new, empty bucket on the session's server, removed after the test."""
    client = s3_server.client()
    bucket = f"homeiq-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    with contextlib.suppress(ClientError):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)
