"""HAProxy in front of proxies under test, run for real from the shipped configuration.

`deploy/haproxy/haproxy.cfg` is used as shipped except for what names this machine: the
`bind` lines (one TLS listener on a free loopback port, with a throwaway certificate, and
the internal metrics frontend on another free loopback port),
the `server` lines (the given backend ports on 127.0.0.1), the global `maxconn` (the
shipped value needs a file-descriptor limit a test runner may not have), the health
check's path and interval, and an added stats socket to read the servers' states.
Timeouts, headers, balancing and retries are the shipped ones.

    def test_x(proxy_factory, haproxy_factory):
        lb = haproxy_factory([port_1, port_2], check_path="/readyz", check_interval="200ms")
        lb.wait_for_status({"proxy-1": "UP", "proxy-2": "DOWN"})
        client = await lb.connect_component("/openai")

The `haproxy_factory` fixture is registered by the root conftest (`pytest_plugins`).
"""

from __future__ import annotations

import csv
import datetime
import ipaddress
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from harness.client import ComponentClient
from tests.http_raw import http_get
from tests.processes import free_port

__all__ = [
    "SHIPPED_CONFIG",
    "RunningHAProxy",
    "haproxy_binary",
    "haproxy_factory",
    "make_certificate",
    "render_config",
    "running_haproxy",
]

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy" / "haproxy.cfg"
BACKEND = "voice_agent_proxies"
INTERNAL_FRONTEND = "metrics_internal"


def haproxy_binary() -> str:
    """The haproxy program (in /usr/sbin, off a non-root user's PATH); scripts/test installs it."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError("haproxy is not installed: run scripts/test or apt-get install haproxy")
    return found


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day.

    Returns (PEM with certificate and key, as HAProxy's `crt` wants it; certificate alone,
    for clients to trust).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    combined, cert_only = directory / "haproxy.pem", directory / "ca.pem"
    combined.write_bytes(cert_pem + key_pem)
    combined.chmod(0o600)
    cert_only.write_bytes(cert_pem)
    return combined, cert_only


def render_config(
    shipped: str,
    *,
    frontend_port: int,
    certificate: Path,
    backend_ports: Sequence[int],
    internal_port: int = 0,
    check_path: str = "/readyz",
    check_interval: str | None = None,
    stats_socket: Path | None = None,
    maxconn: int = 256,
) -> str:
    """The shipped configuration with this machine's addresses (see the module docstring).

    Raises ValueError when the shipped file no longer has a line this replaces, so a
    change there fails loudly instead of quietly testing something else.
    """
    out: list[str] = []
    section = name = ""
    done: set[str] = set()
    for line in shipped.splitlines():
        words = line.split()
        if line and not line[0].isspace() and not line.startswith("#"):
            section, name = words[0], (words[1] if len(words) > 1 else "")
            out.append(line)
            if section == "global" and stats_socket is not None:
                out.append(f"    stats socket {stats_socket} mode 600 level admin")
            continue
        keyword = words[0] if words else ""
        if section == "global" and keyword == "maxconn":
            out.append(f"    maxconn {maxconn}")
            done.add("maxconn")
        elif section == "frontend" and keyword == "bind" and name == INTERNAL_FRONTEND:
            out.append(f"    bind 127.0.0.1:{internal_port}")
            done.add("internal bind")
        elif section == "frontend" and keyword == "bind":
            if "ssl" not in words:
                continue  # the plain-HTTP redirect listener: not needed here
            words[1] = f"127.0.0.1:{frontend_port}"
            words[words.index("crt") + 1] = str(certificate)
            out.append("    " + " ".join(words))
            done.add("bind")
        elif section == "backend" and keyword == "server":
            if "server" not in done:
                out.extend(
                    f"    server proxy-{number} 127.0.0.1:{port}"
                    for number, port in enumerate(backend_ports, start=1)
                )
                done.add("server")
        elif section == "backend" and words[:2] == ["http-check", "send"]:
            words[words.index("uri") + 1] = check_path
            out.append("    " + " ".join(words))
            done.add("check path")
        elif section == "backend" and keyword == "default-server" and check_interval:
            words[words.index("inter") + 1] = check_interval
            out.append("    " + " ".join(words))
        else:
            out.append(line)
    if missing := {"maxconn", "bind", "internal bind", "server", "check path"} - done:
        raise ValueError(f"the shipped HAProxy config has no line for: {sorted(missing)}")
    return "\n".join(out) + "\n"


@dataclass
class RunningHAProxy:
    """One haproxy process listening with TLS on 127.0.0.1:`port`."""

    process: subprocess.Popen[bytes]
    port: int
    internal_port: int  # the internal metrics frontend (plain HTTP)
    ca_file: Path
    stats_socket: Path
    config: Path
    log: Path

    def url(self, path: str = "/openai") -> str:
        return f"wss://127.0.0.1:{self.port}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts this HAProxy's throwaway certificate (and checks it is for 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def connect_component(self, path: str = "/openai") -> ComponentClient:
        """A component client whose WebSocket goes through HAProxy (TLS) to a backend."""
        connection = await connect(
            self.url(path), ssl=self.ssl_context(), open_timeout=10, max_size=None
        )
        return ComponentClient(connection)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        """A plain HTTPS GET through HAProxy: (status, body)."""
        url = f"https://127.0.0.1:{self.port}{path}"
        answer = http_get(url, headers=dict(headers or {}), context=self.ssl_context())
        return answer.status, answer.body

    def get_internal(self, path: str) -> tuple[int, bytes]:
        """A plain HTTP GET on the internal frontend: (status, body)."""
        answer = http_get(f"http://127.0.0.1:{self.internal_port}{path}")
        return answer.status, answer.body

    def server_status(self) -> dict[str, str]:
        """Each backend server's state as HAProxy sees it: "UP", "DOWN", "UP 1/2", ..."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.settimeout(5)
            admin.connect(str(self.stats_socket))
            admin.sendall(b"show stat\n")
            data = b""
            while chunk := admin.recv(65536):
                data += chunk
        rows = csv.DictReader(data.decode().removeprefix("# ").splitlines())
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for_status(self, expected: Mapping[str, str], timeout: float = 10.0) -> None:
        """Block until every named server is in the expected state (health checks ran)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.server_status()
            if all(status.get(name) == state for name, state in expected.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy servers are {status}, expected {dict(expected)}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_haproxy(
    backend_ports: Sequence[int],
    directory: Path,
    *,
    check_path: str = "/readyz",
    check_interval: str | None = None,
    start_timeout: float = 5.0,
) -> Iterator[RunningHAProxy]:
    """Start haproxy in the foreground, wait until it accepts connections, stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    combined, ca_file = make_certificate(directory)
    port, internal_port, stats_socket = free_port(), free_port(), directory / "admin.sock"
    while internal_port == port:
        internal_port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(
        render_config(
            SHIPPED_CONFIG.read_text(),
            frontend_port=port,
            certificate=combined,
            backend_ports=backend_ports,
            internal_port=internal_port,
            check_path=check_path,
            check_interval=check_interval,
            stats_socket=stats_socket,
        )
    )
    log = directory / "haproxy.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = RunningHAProxy(process, port, internal_port, ca_file, stats_socket, config, log)
    try:
        _wait_until_listening(running, start_timeout)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)  # hard stop: close every tunnel now
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_listening(haproxy: RunningHAProxy, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if haproxy.process.poll() is not None:
            raise RuntimeError(
                f"haproxy exited ({haproxy.process.returncode}):\n{haproxy.output()}"
            )
        try:
            socket.create_connection(("127.0.0.1", haproxy.port), timeout=0.5).close()
            if haproxy.stats_socket.exists():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"haproxy did not listen within {timeout} s:\n{haproxy.output()}")


@pytest.fixture
def haproxy_factory(tmp_path: Path) -> Iterator[Callable[..., RunningHAProxy]]:
    """Start HAProxy in front of backend ports: `haproxy_factory([port, ...], check_path=...)`.

    `check_path` is what HAProxy's health check GETs on each backend (the shipped config
    says /readyz); `check_interval` (e.g. "200ms") speeds checks up. Each instance stops
    after the test.
    """
    with ExitStack() as stack:
        count = 0

        def start(
            backend_ports: Sequence[int],
            *,
            check_path: str = "/readyz",
            check_interval: str | None = None,
        ) -> RunningHAProxy:
            nonlocal count
            count += 1
            return stack.enter_context(
                running_haproxy(
                    backend_ports,
                    tmp_path / f"haproxy-{count}",
                    check_path=check_path,
                    check_interval=check_interval,
                )
            )

        yield start
