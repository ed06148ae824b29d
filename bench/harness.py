"""Start benchmark targets as subprocesses on free loopback ports; stop them cleanly.

Every scenario command (fanout.py and its siblings) uses the same pieces:

    with running_target("node") as target:      # free port, readiness wait, clean stop
        report = run_loadgen(["fanout", ...], target)              # or client="npm"

The load generator is one of `CLIENTS`: `lean` (bench/loadgen.py) or `npm`
(bench/npm_client/loadgen.mjs: the npm graphql-ws client on `ws`, fan-out and memory
scenarios only); both take the same options and write the same JSON report.

A target is one of `TARGETS`: ours (`python -m app serve`, fresh SQLite in a temp dir),
the Node peer, the hand-written Python peer, the floor, and `plain` (a hand-written
Strawberry schema over our data layer, HTTP only, for the plain-queries scenario; it
reads the SQLite file named by `DATABASE_URL`, which the caller passes in `env`).
Each runs in its own process group with its own temp dir; its output goes to a log
whose tail is shown on failure.

Errors:

    HarnessError
      ├── TargetUnavailable   the target cannot run on this machine (say why, skip it)
      └── TargetFailed        it was started but did not become ready, or a run failed
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cohorts
import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
NODE_PEER_DIR = PEERS_DIR / "node"
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
PYTHON = sys.executable
LOADGEN = BENCH_DIR / "loadgen.py"
NPM_CLIENT_DIR = BENCH_DIR / "npm_client"
NPM_LOADGEN = NPM_CLIENT_DIR / "loadgen.mjs"
CLIENTS = ("lean", "npm")

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
NPM_TIMEOUT_S = 300.0
LOG_TAIL_BYTES = 4000
OPEN_FILES_WANTED = 20_000

# Extra environment for our server under benchmark. All subscribers of a run share one
# viewer (signing up thousands of users would take minutes of password hashing), and
# the load generator writes and queries as fast as the server answers: the per-user
# limits and the rate limits, right for production, would refuse the benchmark itself.
# The fan-out rows with many cohorts vary `first` above the default maximum page (200);
# every value still yields the channel's few messages (cohorts.py).
OURS_EXTRA_ENV: dict[str, str] = {
    "RATE_LIMITS": "0",
    "MAX_CONNECTIONS_PER_USER": "100000",
    "MAX_LIVE_PER_USER": "100000",
    "PAGE_SIZE_MAX": str(cohorts.PAGE_SIZE_MAX),
}


class HarnessError(RuntimeError):
    """Base of the harness's errors."""


class TargetUnavailable(HarnessError):
    """The target cannot run here; the message says why."""


class TargetFailed(HarnessError):
    """The target did not start, did not become ready, or its run failed."""


# Targets --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyProbe:
    """An HTTP request that answers below 500 once the server is ready."""

    method: str
    path: str
    body: bytes | None = None


GRAPHQL_PROBE = ReadyProbe("POST", "/graphql", b'{"query":"{ __typename }"}')


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: str  # the loadgen kind: live, subscription, floor (or http: no WebSocket)
    description: str
    argv: Sequence[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    probe: ReadyProbe = GRAPHQL_PROBE
    graphql_path: str = "/graphql"


def _ours(port: int, workdir: Path) -> TargetSpec:
    if not (REPO_DIR / "app" / "__main__.py").exists():
        raise TargetUnavailable("app/__main__.py does not exist yet (`python -m app serve`)")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.sqlite'}",
        "BROADCAST_URL": "memory://",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATA_DIR": str(workdir),
        **OURS_EXTRA_ENV,
    }
    argv = [PYTHON, "-m", "app", "serve", "--host", HOST, "--port", str(port)]
    return TargetSpec("ours", "live", "python -m app serve (SQLite file)", argv, REPO_DIR, env)


def _ours_on(server: str, argv: Sequence[str]) -> Callable[[int, Path], TargetSpec]:
    """Ours served by another ASGI server (`peers/ours_asgi.py`), same environment."""

    def spec(port: int, workdir: Path) -> TargetSpec:
        executable = shutil.which(argv[0], path=str(Path(PYTHON).parent))
        if executable is None:
            raise TargetUnavailable(f"{argv[0]} is not installed (pip install {argv[0]})")
        ours = _ours(port, workdir)
        env = {**ours.env, "PYTHONPATH": os.pathsep.join([str(REPO_DIR), str(PEERS_DIR)])}
        command = [executable, *(a.format(host=HOST, port=port) for a in argv[1:])]
        return TargetSpec(f"ours-{server}", "live", f"ours on {server}", command, REPO_DIR, env)

    return spec


def _node(port: int, workdir: Path) -> TargetSpec:
    node = shutil.which("node")
    if node is None:
        raise TargetUnavailable("node is not on PATH")
    ensure_node_peer()
    argv = [node, str(NODE_PEER_DIR / "server.mjs"), "--port", str(port)]
    env = {"NODE_ENV": "production"}
    description = "graphql-ws + @n1ru4l/in-memory-live-query-store (memory)"
    return TargetSpec("node", "live", description, argv, NODE_PEER_DIR, env)


def _python(port: int, workdir: Path) -> TargetSpec:
    argv = [
        PYTHON,
        str(PEERS_DIR / "python_peer.py"),
        "--port",
        str(port),
        "--database",
        str(workdir / "peer.sqlite"),
    ]
    env = {"SECRET_KEY": secrets.token_urlsafe(32)}
    description = "Strawberry subscription + broadcaster re-run (SQLite file)"
    return TargetSpec("python", "subscription", description, argv, REPO_DIR, env)


def _floor(port: int, workdir: Path) -> TargetSpec:
    argv = [PYTHON, str(PEERS_DIR / "floor.py"), "--port", str(port)]
    probe = ReadyProbe("GET", "/health")
    description = "uvicorn WebSocket: one prebuilt frame to N sockets"
    return TargetSpec("floor", "floor", description, argv, REPO_DIR, probe=probe)


def _plain(port: int, workdir: Path) -> TargetSpec:
    argv = [PYTHON, str(PEERS_DIR / "plain_strawberry.py"), "--port", str(port)]
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'plain.sqlite'}",
        "SECRET_KEY": secrets.token_urlsafe(32),
    }
    description = "hand-written Strawberry types over app.database + app.schema.models"
    return TargetSpec("plain", "http", description, argv, REPO_DIR, env)


TARGETS: dict[str, Callable[[int, Path], TargetSpec]] = {
    "ours": _ours,
    # The same application on other ASGI servers (measured in bench/sockets.py).
    "ours-granian": _ours_on(
        "granian",
        [
            "granian",
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--no-access-log",
            "ours_asgi:app",
        ],
    ),
    "ours-hypercorn": _ours_on(
        "hypercorn", ["hypercorn", "--bind", "{host}:{port}", "ours_asgi:app"]
    ),
    "node": _node,
    "python": _python,
    "floor": _floor,
    "plain": _plain,
}
# The targets that serve live results over WebSocket (fan-out, precision, ...).
LIVE_TARGETS = ("ours", "node", "python", "floor")


def ensure_node_peer() -> None:
    """Install the Node peer's packages from its lock file when they are missing."""
    ensure_npm_packages(NODE_PEER_DIR, "the Node peer")


def ensure_npm_packages(directory: Path, what: str) -> None:
    """`npm ci` in `directory` when its node_modules is missing or older than its lock."""
    installed = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise TargetUnavailable(f"npm is not on PATH; cannot install {what}")
    print(f"installing {what}'s packages (npm ci) ...", file=sys.stderr, flush=True)
    completed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise TargetUnavailable(f"npm ci failed: {completed.stderr[-LOG_TAIL_BYTES:]}")


# Processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def raise_fd_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise this process's soft open-files limit (inherited by the targets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


@dataclass
class RunningTarget:
    spec: TargetSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.spec.graphql_path}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def usage(self) -> dict[str, float]:
        """CPU seconds so far and resident memory now, in bytes, of the target's process
        and its children (granian serves from a worker process)."""
        try:
            root = psutil.Process(self.process.pid)
            cpu_s, rss = 0.0, 0.0
            for process in [root, *root.children(recursive=True)]:
                cpu = process.cpu_times()
                cpu_s += cpu.user + cpu.system
                rss += process.memory_info().rss
            return {"cpu_s": cpu_s, "rss_bytes": rss}
        except psutil.Error:
            return {"cpu_s": float("nan"), "rss_bytes": float("nan")}


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _probe_once(port: int, probe: ReadyProbe) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        headers = {"Content-Type": "application/json"} if probe.body else {}
        connection.request(probe.method, probe.path, body=probe.body, headers=headers)
        return connection.getresponse().status < 500
    except OSError:
        return False
    finally:
        connection.close()


def wait_ready(target: RunningTarget, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise TargetFailed(
                f"{target.spec.name} exited with {target.process.returncode} while starting:\n"
                + target.log_tail()
            )
        if _probe_once(target.port, target.spec.probe):
            return
        time.sleep(0.1)
    raise TargetFailed(f"{target.spec.name} not ready in {timeout}s:\n{target.log_tail()}")


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait, then SIGKILL the target's own process group (ours alone)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


@contextlib.contextmanager
def running_target(
    name: str,
    *,
    startup_timeout: float = STARTUP_TIMEOUT_S,
    keep_workdir: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[RunningTarget]:
    """Start target `name` on a free loopback port; stop it and clean up on exit.

    `env` overrides the target's own environment (e.g. one DATABASE_URL and SECRET_KEY
    shared by two targets, or a peer's option such as PEER_PERMESSAGE_DEFLATE=1).
    """
    if name not in TARGETS:
        raise HarnessError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        port = free_port()
        spec = TARGETS[name](port, workdir)
        if env:
            spec = dataclasses.replace(spec, env={**spec.env, **env})
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(spec.argv),
                cwd=spec.cwd,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches it alone
            )
        target = RunningTarget(spec, port, process, log_path, workdir)
        try:
            wait_ready(target, startup_timeout)
            yield target
        finally:
            stop(process)
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def kind_of(name: str) -> str:
    """The load-generator kind of target `name` (live, subscription, floor or http)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        return TARGETS[name](0, workdir).kind
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_available(name: str) -> str | None:
    """None if target `name` can run here, else the reason it cannot."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        TARGETS[name](0, workdir)
        return None
    except TargetUnavailable as error:
        return str(error)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# Load generator -------------------------------------------------------------------


def loadgen_command(client: str) -> list[str]:
    """The command that runs load generator `client` (its packages installed first)."""
    if client == "lean":
        return [PYTHON, str(LOADGEN)]
    if client != "npm":
        raise HarnessError(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")
    node = shutil.which("node")
    if node is None:
        raise TargetUnavailable("node is not on PATH (the npm graphql-ws client)")
    ensure_npm_packages(NPM_CLIENT_DIR, "the npm client")
    return [node, str(NPM_LOADGEN)]


def check_client(client: str) -> str | None:
    """None if load generator `client` can run here, else the reason it cannot."""
    try:
        loadgen_command(client)
        return None
    except TargetUnavailable as error:
        return str(error)


class ResourceSampler:
    """Samples a target's resident memory in a thread; bounded by `stop()` or `limit`."""

    def __init__(self, target: RunningTarget, interval: float = 0.25, limit: int = 20_000):
        self._target = target
        self._interval = interval
        self._limit = limit
        self._stopped = threading.Event()
        self.peak_rss = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        for _ in range(self._limit):
            rss = self._target.usage()["rss_bytes"]
            if rss == rss:  # not NaN
                self.peak_rss = max(self.peak_rss, rss)
            if self._stopped.wait(self._interval):
                return


def run_loadgen(
    args: Sequence[str], target: RunningTarget, timeout: float, client: str = "lean"
) -> dict[str, Any]:
    """Run load generator `client` in its own process against `target`; its JSON report.

    The report gains `server` (CPU seconds used and peak/start RSS during the run) and
    `loadgen_process` (the loadgen process's own CPU seconds, from rusage).
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out_path = Path(handle.name)
    argv = [*loadgen_command(client), *args, "--url", target.url, "--json-out", str(out_path)]
    before = target.usage()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with ResourceSampler(target) as sampler:
            completed = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        after = target.usage()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if completed.returncode != 0:
            raise TargetFailed(
                f"loadgen failed against {target.spec.name} (exit {completed.returncode}):\n"
                f"{completed.stderr[-LOG_TAIL_BYTES:]}\n--- server log ---\n{target.log_tail()}"
            )
        report: dict[str, Any] = json.loads(out_path.read_text())
    except subprocess.TimeoutExpired as error:
        raise TargetFailed(f"loadgen against {target.spec.name} exceeded {timeout}s") from error
    finally:
        out_path.unlink(missing_ok=True)
    report["server"] = {
        "cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "rss_start_bytes": before["rss_bytes"],
        "rss_peak_bytes": max(sampler.peak_rss, after["rss_bytes"]),
    }
    report["loadgen_process"] = {
        "cpu_s": round(
            (children_after.ru_utime - children_before.ru_utime)
            + (children_after.ru_stime - children_before.ru_stime),
            3,
        )
    }
    return report


def machine_info() -> dict[str, Any]:
    node = shutil.which("node")
    node_version = None
    if node:
        node_version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "node": node_version,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def warn_if_busy(threshold: float = 0.7) -> None:
    """Say so when other work already loads the machine: the figures would be noisy."""
    load = os.getloadavg()[0]
    if load > threshold:
        print(
            f"warning: load average is {load:.2f} before the run; other processes compete "
            "for the 2 cores and the figures will be noisy",
            file=sys.stderr,
            flush=True,
        )
