"""Redis servers of a test's own: a Cluster, a Sentinel group, a TLS server with an ACL user.

Every server is a ``redis-server`` process on a free loopback port, with its files in a temporary
directory, stopped by its PID when the test is done. Without ``redis-server`` on the ``PATH`` the
fixtures using these skip with that reason (:func:`require_redis_server`).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "RedisCluster",
    "RedisProcess",
    "RedisSentinel",
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "require_redis_server",
    "start_cluster",
    "start_sentinel",
    "start_server",
    "start_tls_server",
]


def require_redis_server() -> None:
    """Skip the calling test when ``redis-server`` or ``redis-cli`` is not installed."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install redis-server)")


def free_port(bus: bool = False) -> int:
    """A loopback port nobody listens on (and, with ``bus``, port + 10000 too: a cluster's bus)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", port + 10000))
                return port
    raise RuntimeError("no free loopback port")


@dataclass
class RedisProcess:
    """One ``redis-server`` (or ``redis-server --sentinel``) process."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def addr(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def stop(self, sig_kill: bool = False) -> None:
        """Stop the process by its PID (SIGTERM, or SIGKILL with ``sig_kill``) and reap it."""
        if self.process.poll() is None:
            if sig_kill:
                self.process.kill()
            else:
                self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _cli(port: int, *args: str, tls: Sequence[str] = ()) -> str:
    out = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *tls, *args],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def _wait(what: str, probe: Callable[[], bool], *, tries: int = 300) -> None:
    """Call ``probe`` every 50 ms until it is true; after ``tries`` calls, raise."""
    for _ in range(tries):
        if probe():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen in time")


def start_server(
    directory: Path, *args: str, port: int | None = None, bus: bool = False, ping: bool = True
) -> RedisProcess:
    """Start ``redis-server`` on a free loopback port with ``args`` and wait until it answers."""
    port = port or free_port(bus=bus)
    workdir = directory / str(port)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "redis.log"
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
    command += ["--save", "", "--appendonly", "no", "--logfile", str(log), *args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    server = RedisProcess(port=port, process=process, log=log)
    if ping:
        try:
            _wait(f"redis-server on {port} answering", functools.partial(_answers, port))
        except RuntimeError:
            server.stop()
            raise
    return server


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class RedisCluster:
    """A Redis Cluster of 3 primaries and 3 replicas on loopback."""

    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def addrs(self) -> list[str]:
        """Every node's ``host:port``."""
        return [n.addr for n in self.nodes]

    def node(self, port: int) -> RedisProcess:
        """The node listening on ``port``."""
        return next(n for n in self.nodes if n.port == port)

    def cli(self, port: int, *args: str) -> str:
        """``redis-cli -p port args...``: its output."""
        return _cli(port, *args)

    def primary_of(self, slot: int) -> int:
        """The port of the primary serving ``slot`` (as the first live node sees it)."""
        for n in self.nodes:
            if n.process.poll() is not None:
                continue
            for line in _cli(n.port, "cluster", "nodes").splitlines():
                parts = line.split()
                if len(parts) < 9 or "master" not in parts[2] or "fail" in parts[2]:
                    continue
                for span in parts[8:]:
                    lo, _, hi = span.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return int(parts[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no primary serves slot {slot}")

    def replicas_of(self, port: int) -> list[int]:
        """The ports of the replicas of the primary on ``port``."""
        out = _cli(port, "cluster", "nodes")
        me = next(line.split()[0] for line in out.splitlines() if "myself" in line)
        return [
            int(p[1].split("@")[0].rsplit(":", 1)[1])
            for p in (line.split() for line in out.splitlines())
            if len(p) > 3 and p[3] == me and "fail" not in p[2]
        ]

    def healthy(self) -> bool:
        """Every live node reports ``cluster_state:ok``."""
        return all(
            "cluster_state:ok" in _cli(n.port, "cluster", "info")
            for n in self.nodes
            if n.process.poll() is None
        )

    def wait_healthy(self) -> None:
        """Wait until every live node reports ``cluster_state:ok``."""
        _wait("the cluster becoming healthy", self.healthy, tries=600)

    def stop(self) -> None:
        """Stop every node by its PID."""
        for n in self.nodes:
            n.stop()


def start_cluster(directory: Path, node_timeout_ms: int = 1000) -> RedisCluster:
    """Start 6 nodes and join them into a cluster of 3 primaries, each with one replica."""
    cluster = RedisCluster()
    try:
        for _ in range(6):
            cluster.nodes.append(
                start_server(
                    directory,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                    "--repl-diskless-sync-delay",
                    "0",
                    bus=True,
                )
            )
        out = subprocess.run(
            ["redis-cli", "--cluster", "create", *cluster.addrs, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed: {out.stdout.decode()} {out.stderr.decode()}"
            )
        cluster.wait_healthy()
        # every replica has attached and holds its primary's data (a replica that never synced
        # is never promoted: the failover tests need one for each primary)
        _wait(
            "every replica attaching",
            (lambda: all(len(cluster.replicas_of(cluster.primary_of(s))) == 1 for s in (0, 8000, 16000))),
            tries=600,
        )
        _wait(
            "every replica syncing",
            lambda: (
                sum("master_link_status:up" in _cli(n.port, "info", "replication") for n in cluster.nodes)
                == 3
            ),
            tries=600,
        )
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass
class RedisSentinel:
    """One primary, one replica and three sentinels watching them as ``master``."""

    master: str
    primary: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess] = field(default_factory=list)

    @property
    def sentinel_addrs(self) -> list[str]:
        """The sentinels' ``host:port``."""
        return [s.addr for s in self.sentinels]

    def current_primary(self) -> int:
        """The port the sentinels name as the primary."""
        for s in self.sentinels:
            out = _cli(s.port, "sentinel", "get-master-addr-by-name", self.master).split()
            if len(out) == 2 and out[1].isdigit():
                return int(out[1])
        raise RuntimeError("no sentinel answers")

    def stop(self) -> None:
        """Stop every process by its PID."""
        for p in [*self.sentinels, self.replica, self.primary]:
            p.stop()


def start_sentinel(directory: Path, master: str = "truckllm") -> RedisSentinel:
    """Start a primary, its replica and three sentinels (quorum 2, down after 1 s)."""
    primary = start_server(directory, "--repl-diskless-sync-delay", "0")
    procs = [primary]
    try:
        replica = start_server(
            directory, "--replicaof", "127.0.0.1", str(primary.port), "--repl-diskless-sync-delay", "0"
        )
        procs.append(replica)
        _wait(
            "the replica syncing",
            (lambda: "master_link_status:up" in _cli(replica.port, "info", "replication")),
        )
        group = RedisSentinel(master=master, primary=primary, replica=replica)
        for _ in range(3):
            port = free_port()
            conf = directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {master} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {master} 1000\n"
                f"sentinel failover-timeout {master} 5000\n"
                f"sentinel parallel-syncs {master} 1\n"
            )
            process = subprocess.Popen(
                [
                    "redis-server",
                    str(conf),
                    "--sentinel",
                    "--logfile",
                    str(directory / f"sentinel-{port}.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            sentinel = RedisProcess(port=port, process=process, log=directory / f"sentinel-{port}.log")
            procs.append(sentinel)
            group.sentinels.append(sentinel)
            _wait(f"sentinel on {port} answering", functools.partial(_answers, port))
        # every sentinel knows the replica and the other sentinels (a failover needs both)
        _wait(
            "the sentinels discovering each other",
            (
                lambda: all(
                    _sentinel_field(s.port, master, "num-other-sentinels") == "2"
                    and _sentinel_field(s.port, master, "num-slaves") == "1"
                    for s in group.sentinels
                )
            ),
            tries=600,
        )
    except BaseException:
        for p in procs:
            p.stop()
        raise
    return group


def _sentinel_field(port: int, master: str, name: str) -> str | None:
    lines = _cli(port, "sentinel", "master", master).splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == name:
            return lines[i + 1].strip()
    return None


@dataclass
class TlsFiles:
    """A CA and a server certificate for ``127.0.0.1`` signed by it, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a CA and a ``127.0.0.1`` server certificate (EC P-256, valid for a day) in ``directory``."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey | None, ca: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(signer or key, hashes.SHA256())
        return key, cert

    ca_key, ca_cert = build("truckllm test CA", None, None, True)
    key, cert = build("127.0.0.1", ca_cert.subject, ca_key, False)
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def start_tls_server(directory: Path, tls: TlsFiles, *args: str) -> RedisProcess:
    """Start ``redis-server`` listening with TLS only (no plain port), clients not asked for a
    certificate; ``args`` add to its configuration (``--user ...``)."""
    port = free_port()
    return start_server(
        directory,
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(tls.cert),
        "--tls-key-file",
        str(tls.key),
        "--tls-ca-cert-file",
        str(tls.ca),
        "--tls-auth-clients",
        "no",
        *args,
        port=port,
    )
