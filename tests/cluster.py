"""A Wharf cluster on loopback: web nodes with data dirs of their own behind HAProxy round-robin,
sharing one database, one Redis and one S3 endpoint (moto's server mode).

Used by tests/e2e/test_scaleout.py and bench/scaleout.py. Nothing here knows pytest or Django's test
settings: the caller hands `Cluster` the environment every node shares (DATABASE_URL, REDIS_URL, the
settings module) and the cluster adds what each node owns. Nodes are started the way README tells an
operator to: `gunicorn --config gunicorn.conf.py` on the same variables, the first node's `keys/`
folder copied to every other node, static files collected into each node's data dir before it starts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.live import (
    BIN,
    REPO_ROOT,
    GiveUp,
    Loopback,
    free_port,
    log_tail,
    stop_process,
    wait_until,
    wait_until_healthy,
)

S3_ACCESS_KEY = "wharf-test"
S3_SECRET_KEY = "wharf-test-secret"
S3_REGION = "us-east-1"


# --- S3 ------------------------------------------------------------------------------------------


@dataclass
class S3Server(Loopback):
    """moto's S3 emulator in server mode on 127.0.0.1:`port`."""

    port: int
    process: subprocess.Popen
    log_path: Path

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=S3_REGION,
                            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY)

    def make_bucket(self, prefix: str = "wharf") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        """What a node needs to keep its bytes in `bucket`."""
        return {"HUB_S3_BUCKET": bucket, "HUB_S3_ENDPOINT_URL": self.url, "HUB_S3_REGION": S3_REGION,
                "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


def start_s3(root: Path) -> S3Server:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = root / "moto.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(port=port, process=process, log_path=log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"moto_server exited:\n{log_tail(log_path)}")
        return requests.get(f"{server.url}/moto-api/", timeout=2).status_code < 500

    try:
        wait_until(answers, timeout=30, message="moto_server to answer")
    except Exception:
        server.stop()
        raise
    return server


# --- Web nodes -----------------------------------------------------------------------------------


@dataclass
class Node(Loopback):
    """One web node: gunicorn on 127.0.0.1:`port` with its own data dir."""

    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return log_tail(self.log_path)

    def access_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the master and its workers: a machine that dies, not a node that stops."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            stop_process(self.process, timeout=15)


# --- The balancer --------------------------------------------------------------------------------

HAPROXY_CONFIG = """\
# The configuration README's scale-out section shows, on loopback.
global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    option forwardfor
    option redispatch
    retries 3
    retry-on conn-failure empty-response
    timeout connect 5s
    timeout http-request 30s
    timeout http-keep-alive 75s
    timeout client 1h
    timeout server 1h

frontend wharf
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{servers}
"""


@dataclass
class Balancer(Loopback):
    port: int
    root: Path
    process: subprocess.Popen | None = None

    @property
    def stats_socket(self) -> Path:
        return self.root / "haproxy.sock"

    @property
    def config_path(self) -> Path:
        return self.root / "haproxy.cfg"

    def configure(self, nodes: list[Node]) -> None:
        servers = "".join(f"    server {node.name} 127.0.0.1:{node.port} check\n" for node in nodes)
        self.config_path.write_text(HAPROXY_CONFIG.format(port=self.port, stats_socket=self.stats_socket,
                                                          servers=servers))

    def start(self) -> None:
        log = open(self.root / "haproxy.log", "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(["haproxy", "-db", "-f", str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def answers() -> bool:
            if self.process.poll() is not None:
                raise GiveUp(f"haproxy exited:\n{log_tail(self.root / 'haproxy.log')}")
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200

        wait_until(answers, timeout=30, message="haproxy to answer /healthz")

    def command(self, line: str) -> str:
        """A command on HAProxy's runtime API (`show sess`, `show servers state`, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def busy_servers(self, min_age_seconds: int = 1) -> list[str]:
        """The servers holding a request (a session with a server) for at least `min_age_seconds`."""
        busy = []
        for line in self.command("show sess").splitlines():
            server = re.search(r"\bsrv=(\S+)", line)
            age = re.search(r"\bage=(\d+)([smhd]?)", line)
            if server and server.group(1) != "<none>" and age:
                seconds = int(age.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[age.group(2)]
                if seconds >= min_age_seconds:
                    busy.append(server.group(1))
        return busy

    def servers_up(self) -> set[str]:
        """Names of the servers HAProxy's health checks consider up."""
        up = set()
        for line in self.command("show servers state nodes").splitlines():
            fields = line.split()
            # be_id be_name srv_id srv_name srv_addr srv_op_state ...; 2 = running
            if len(fields) > 5 and fields[1] == "nodes" and fields[5] == "2":
                up.add(fields[3])
        return up

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)


# --- The cluster ---------------------------------------------------------------------------------


@dataclass
class Cluster:
    """Web nodes behind one balancer. `shared` is what every node's environment holds beyond the
    process's own: the database, Redis, S3 and the settings module."""

    root: Path
    shared: dict[str, str]
    balancer: Balancer = field(init=False)
    nodes: list[Node] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.balancer = Balancer(port=free_port(), root=self.root)

    @property
    def url(self) -> str:
        return self.balancer.url

    @property
    def host(self) -> str:
        return self.balancer.host

    def environment(self, data_dir: Path, port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("HUB_", "AWS_")) and key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
        env.update({
            "HUB_DATA_DIR": str(data_dir),
            "PORT": str(port),
            "HUB_BIND": "127.0.0.1",
            "HUB_PUBLIC_URL": self.balancer.url,
            "HUB_BEHIND_PROXY": "true",
            "HUB_WEB_WORKERS": "2",
            **self.shared,
        })
        return env

    def start_node(self) -> Node:
        """Start one more node (not yet behind the balancer: see `balance`). Every node after the first
        gets a copy of the first node's keys/ folder, as README's "adding a node" says."""
        name = f"node{len(self.nodes) + 1}"
        data_dir = self.root / name
        data_dir.mkdir()
        if self.nodes:
            shutil.copytree(self.nodes[0].data_dir / "keys", data_dir / "keys")
        port = free_port()
        env = self.environment(data_dir, port)
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
                       cwd=REPO_ROOT, env=env, check=True)
        log_path = self.root / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen([str(BIN / "gunicorn"), "--config", str(REPO_ROOT / "gunicorn.conf.py")],
                                       cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        node = Node(name=name, port=port, data_dir=data_dir, process=process, log_path=log_path)
        try:
            wait_until_healthy(node.url, process, log_path)
        except Exception:
            node.kill()
            raise
        self.nodes.append(node)
        return node

    def start_worker(self) -> subprocess.Popen:
        """A Celery worker node with beat (`celery -A hub worker -B`): a data dir of its own, the first
        node's keys, the shared environment."""
        name = f"worker{len(self.workers) + 1}"
        data_dir = self.root / name
        data_dir.mkdir()
        shutil.copytree(self.nodes[0].data_dir / "keys", data_dir / "keys")
        env = self.environment(data_dir, free_port())
        with open(self.root / f"{name}.log", "ab") as log:
            worker = subprocess.Popen(
                [str(BIN / "celery"), "-A", "hub", "worker", "-B", "-Q", "celery", "--concurrency", "2",
                 "-n", f"{name}@%h", "--loglevel", "INFO", "--schedule", str(data_dir / "beat-schedule")],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(worker)
        return worker

    def balance(self) -> None:
        """(Re)start the balancer over every node started so far."""
        self.balancer.stop()
        self.balancer.configure(self.nodes)
        self.balancer.start()
        names = {node.name for node in self.nodes if node.alive}
        wait_until(lambda: self.balancer.servers_up() >= names, timeout=30,
                   message=f"haproxy to see {sorted(names)} up")

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def nodes_serving(self, fragment: str) -> set[str]:
        """Names of the nodes whose access log holds a request line containing `fragment`."""
        return {node.name for node in self.nodes if fragment in node.access_log()}

    def log(self) -> str:
        """The end of every node's log (what the client harness shows when a client fails)."""
        return "\n".join(f"--- {node.name}\n{node.log()[-3000:]}" for node in self.nodes)

    def stop(self) -> None:
        self.balancer.stop()
        for worker in self.workers:
            stop_process(worker, timeout=20)
        for node in self.nodes:
            node.stop()


def start_cluster(root: Path, shared: dict[str, str], *, nodes: int) -> Cluster:
    cluster = Cluster(root=root, shared=shared)
    try:
        for _ in range(nodes):
            cluster.start_node()
        cluster.balance()
    except Exception:
        cluster.stop()
        raise
    return cluster
