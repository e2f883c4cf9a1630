"""Real services on loopback for the cluster profile: Postgres, Redis, an S3 endpoint (moto)
and dagster-celery workers, each a child process of the test session, stopped at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT / "deploy" / "cluster"
BUCKET = "code-index"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


def missing_services() -> list[str]:
    """Programs the cluster tests need that are not installed here."""
    needed = ["initdb", "postgres", "redis-server", "moto_server", "dagster-celery"]
    bindir = Path(sys.executable).parent
    return [n for n in needed if not (shutil.which(n) or (bindir / n).exists())]


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


@dataclass
class Services:
    """The processes and the environment every host of the profile shares."""

    root: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    pg_url: str = ""
    s3_endpoint: str = ""
    _starting: list[tuple[str, subprocess.Popen, Path]] = field(default_factory=list)

    def start(self) -> Services:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg_url = self._postgres()
        redis_port = free_port()
        self._spawn(
            "redis",
            [
                _bin("redis-server"),
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            port=redis_port,
        )
        s3_port = free_port()
        self._spawn("moto", [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], s3_port)
        self.s3_endpoint = f"http://127.0.0.1:{s3_port}"
        self.env = {
            "DAGSTER_PG_URL": self.pg_url,
            "DAGSTER_S3_LOG_BUCKET": BUCKET,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "CODE_INDEX_EXECUTOR": "celery",
            "CODE_INDEX_CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0",
            "CODE_INDEX_STEP_OUTPUTS": f"s3://{BUCKET}/step-outputs",
            "CODE_INDEX_STORAGE_OPTIONS": (
                f"aws_endpoint={self.s3_endpoint};allow_http=true;aws_region=us-east-1"
            ),
            "CODE_INDEX_EMBED_CONSUMERS": "2",
        }
        self.s3().create_bucket(Bucket=BUCKET)
        return self

    def home(self, name: str) -> Path:
        """A Dagster home with the profile's dagster.yaml (Postgres, S3 compute logs)."""
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        profile = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
        # Compute logs are staged here before their upload, not in the system temp dir,
        # where Dagster leaves a directory per run behind.
        profile["compute_logs"]["config"]["local_dir"] = str(home / "compute-log-staging")
        (home / "dagster.yaml").write_text(yaml.safe_dump(profile))
        return home

    def reader_home(self) -> Path:
        """A Dagster home on the shared Postgres alone: enough to read runs and events."""
        home = self.root / "home-reader"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {self.pg_url}\n"
            "telemetry:\n  enabled: false\n"
        )
        return home

    def lancedb_options(self) -> dict[str, str]:
        """What LanceDB needs to open the profile's `s3://` tables from this process."""
        return {
            "aws_endpoint": self.s3_endpoint,
            "allow_http": "true",
            "aws_region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }

    def s3(self):
        """A boto3 client of the loopback S3 endpoint."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def process_env(self, home: Path, **extra: str) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CODE_INDEX_", "DAGSTER_", "AWS_"))
        }
        return {
            **base,
            **self.env,
            "DAGSTER_HOME": str(home),
            # dagster-celery runs `celery` from PATH: this interpreter's, activated or not.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(PROJECT),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **extra,
        }

    def worker(
        self, name: str, queue: str, concurrency: int, config_yaml: Path | None = None
    ) -> subprocess.Popen:
        """A dagster-celery worker with its own Dagster home, ready to take tasks."""
        return self.workers([(name, queue, concurrency, config_yaml)])[0]

    def workers(self, specs: list[tuple[str, str, int, Path | None]]) -> list[subprocess.Popen]:
        """Several workers `(name, queue, concurrency, celery yaml or None)`, started at once
        (each imports Dagster and the code location for seconds), ready to take tasks."""
        procs = [self.start_worker(*spec) for spec in specs]
        self.wait_for_workers()
        return procs

    def start_worker(
        self, name: str, queue: str, concurrency: int, config_yaml: Path | None = None, **env: str
    ) -> subprocess.Popen:
        """A dagster-celery worker with its own Dagster home (`env` overrides the shared
        settings for it alone); `wait_for_workers` waits until it takes tasks."""
        home = self.home(f"home-{name}")
        log = self.root / f"worker-{name}.log"
        cmd = [
            _bin("dagster-celery"),
            "worker",
            "start",
            "-A",
            "orchestration.celery_app",
            "-y",
            str(config_yaml or DEPLOY / "celery.yaml"),
            "-q",
            queue,
            "-n",
            name,
            "--",
            "--concurrency",
            str(concurrency),
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                env=self.process_env(home, **env),
                cwd=PROJECT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self._starting.append((name, proc, log))
        return proc

    def wait_for_workers(self, timeout: float = 120) -> None:
        """Until every worker started since the last call says it is ready."""
        deadline = time.monotonic() + timeout
        for name, proc, log in self._starting:
            while b" ready." not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        self._starting.clear()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def _spawn(self, name: str, cmd: list[str], port: int) -> subprocess.Popen:
        out = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - open for the process' life
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        wait_for_port(port, proc)
        return proc

    def _postgres(self) -> str:
        """A fresh cluster owned by `postgres` (it refuses to run as root), fsync off."""
        data = Path(tempfile.mkdtemp(prefix="code-index-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(data, "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_user, _bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        port = free_port()
        self._spawn(
            "postgres",
            [
                *as_user,
                _bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ],
            port=port,
        )
        self._pg_data = data
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
                break
            except psycopg2.OperationalError:  # still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE dagster")
        conn.close()
        return f"postgresql://postgres@127.0.0.1:{port}/dagster"


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
