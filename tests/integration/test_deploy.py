"""The Dockerfile and deploy/kubernetes/, checked without a container runtime or a cluster.

Dockerfile: parsed with dockerfile-parse, linted with hadolint, its HEALTHCHECK command
run against a local HTTP(S) server. Manifests: validated against the Kubernetes JSON
schemas shipped by kubernetes-validate (strict: unknown fields fail), then checked for
what the schema cannot see (ports, probes, grace period against the drain, sizing).
docs/deploy.md says what this does not prove.
"""

from __future__ import annotations

import copy
import fnmatch
import http.server
import ipaddress
import json
import re
import shlex
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.haproxy import make_certificate
from tests.installs import BUILD_INPUTS, ROOT

DOCKERFILE = ROOT / "Dockerfile"
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes these manifests claim (autoscaling/v2, policy/v1 are older) and
# the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.latest_version())

# The server's configuration contract (flag [environment variable]); the manifests and
# the Dockerfile may name only these.
DOCUMENTED_ENV = {
    "OPENAI_API_KEY",
    "OPENAI_REALTIME_URL",
    "LOG_LEVEL",
    "OPENAI_PROXY_HOST",
    "OPENAI_PROXY_PORT",
    "OPENAI_PROXY_PATH",
    "OPENAI_PROXY_CLIENT_TOKEN",
    "OPENAI_PROXY_CLIENT_TOKEN_FILE",
    "OPENAI_PROXY_ALLOW_ORIGINS",
    "OPENAI_PROXY_MAX_SESSIONS",
    "OPENAI_PROXY_MAX_SESSIONS_PER_IP",
    "OPENAI_PROXY_TRUSTED_PROXIES",
    "OPENAI_PROXY_LOG_FORMAT",
    "OPENAI_PROXY_DRAIN_SECONDS",
    "OPENAI_PROXY_WORKERS",
    "OPENAI_PROXY_TLS_CERT",
    "OPENAI_PROXY_TLS_KEY",
}
DEFAULT_DRAIN_SECONDS = 30
DEFAULT_MAX_SESSIONS = 1000

# Measured with benchmarks/bench_proxy.py (docs/deploy.md): the sizing checks below use them.
RSS_AT_START_MIB = 48
RSS_PER_IDLE_SESSION_KIB = 25
# Seconds of CPU per second of a voice conversation: the lowest run now, the highest ever.
CPU_PER_CONVERSATION_SECOND = (0.0038, 0.0062)


# ---------------------------------------------------------------- Dockerfile


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def stages(dockerfile: DockerfileParser) -> list[list[dict[str, Any]]]:
    """The instructions of each build stage, in order."""
    result: list[list[dict[str, Any]]] = []
    for instruction in dockerfile.structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result and instruction["instruction"] != "COMMENT":
            result[-1].append(instruction)
    return result


def values(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def exec_form(text: str) -> list[str]:
    parsed = json.loads(text)
    assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed), text
    return parsed


@pytest.fixture(scope="module")
def proxy_flags() -> set[str]:
    """The options `python -m proxy --help` documents."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"--[a-z][a-z0-9-]*", result.stdout))


def test_hadolint_passes(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and would not pass anything: an unpinned apt-get in a root final stage fails.
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text() + "USER root\nRUN apt-get install curl\n")
    result = subprocess.run([str(hadolint), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3008" in result.stdout or "DL3002" in result.stdout, result.stdout


def test_two_stages_on_a_slim_python_3_11(dockerfile: DockerfileParser) -> None:
    assert len(stages(dockerfile)) == 2
    for image in dockerfile.parent_images:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image


def test_the_build_copies_what_the_wheel_needs_and_installs_no_extras(
    dockerfile: DockerfileParser,
) -> None:
    build, final = stages(dockerfile)
    copied = [shlex.split(value)[:-1] for value in values(build, "COPY")]
    assert sorted(word for words in copied for word in words) == sorted(BUILD_INPUTS)
    commands = " ".join(values(build, "RUN"))
    assert "pip wheel --no-deps" in commands
    installs = [words.strip() for words in re.findall(r"pip install ([^&;]+)", commands)]
    assert installs == ["/wheels/*.whl"], installs  # the wheel alone: no [extras], no -e
    assert values(final, "COPY") == ["--from=build /opt/venv /opt/venv"]
    assert "pip install" not in " ".join(values(final, "RUN"))
    everything = [value for stage in (build, final) for value in values(stage, "RUN")]
    everything += values(final, "HEALTHCHECK")
    assert not re.search(r"\b(curl|wget|apt-get)\b", " ".join(everything))  # nothing more


def test_the_final_stage_runs_unprivileged_on_8080(dockerfile: DockerfileParser) -> None:
    _, final = stages(dockerfile)
    (user,) = values(final, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, user  # numeric: runAsNonRoot can check it
    assert gid.isdigit() and int(gid) > 0, user
    assert values(final, "EXPOSE") == ["8080"]
    assert dockerfile.envs["OPENAI_PROXY_PORT"] == "8080"
    assert values(final, "STOPSIGNAL") == ["SIGTERM"]


def test_the_command_uses_the_console_script_and_real_flags(
    dockerfile: DockerfileParser, proxy_flags: set[str]
) -> None:
    _, final = stages(dockerfile)
    (entrypoint,) = values(final, "ENTRYPOINT")
    assert exec_form(entrypoint) == ["voice-agent-proxy"]
    assert 'voice-agent-proxy = "proxy.__main__:main"' in (ROOT / "pyproject.toml").read_text()
    command = exec_form(dockerfile.cmd or "")
    assert command[command.index("--host") + 1] == "0.0.0.0"
    flags = {word for word in command if word.startswith("--")}
    assert flags <= proxy_flags, flags - proxy_flags
    assert set(dockerfile.envs) - {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= (
        DOCUMENTED_ENV
    )


def test_the_dockerignore_keeps_the_context_to_the_build_inputs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        """Docker's rule: the last matching pattern wins; a pattern also covers what is
        below a matching directory; `!` re-includes. (`**` and `*` globs only.)"""
        result = False
        parts = path.split("/")
        for pattern in patterns:
            negated, glob = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
            glob = glob.replace("**/", "*/") if glob != "**" else "*"
            prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            if any(
                fnmatch.fnmatchcase(p, glob) or fnmatch.fnmatchcase(p, f"*/{glob}")
                for p in prefixes
            ):
                result = not negated
        return result

    for name in BUILD_INPUTS:
        assert not ignored(name), name
    for needed in (
        "proxy/server.py",
        "proxy/test_app/index.html",
        "harness/mock_openai/script.py",
    ):
        assert not ignored(needed), needed
    for excluded in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/test_session.py",
        "proxy/__pycache__/server.cpython-311.pyc",
        "test-results/x.png",
    ):
        assert ignored(excluded), excluded


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server(tmp_path: Path) -> Iterator[tuple[http.server.HTTPServer, Path]]:
    """An HTTP server answering GET /healthz with `_Health.status`; TLS when asked."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    combined, _ = make_certificate(tmp_path)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, combined
    server.shutdown()
    server.server_close()


def run_healthcheck(dockerfile: DockerfileParser, env: dict[str, str]) -> int:
    _, final = stages(dockerfile)
    (healthcheck,) = values(final, "HEALTHCHECK")
    command = exec_form(healthcheck.split("CMD", 1)[1].strip())
    assert command[0] == "python"  # the image's python; here, this one
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30
    )
    return result.returncode


def test_the_healthcheck_asks_healthz_on_the_configured_port(
    dockerfile: DockerfileParser, health_server: tuple[http.server.HTTPServer, Path]
) -> None:
    server, _ = health_server
    env = {"OPENAI_PROXY_PORT": str(server.server_address[1])}
    _Health.status = 200
    assert run_healthcheck(dockerfile, env) == 0
    _Health.status = 503
    assert run_healthcheck(dockerfile, env) != 0
    server.shutdown()
    server.server_close()
    assert run_healthcheck(dockerfile, env) != 0  # nothing listening


def test_the_healthcheck_speaks_tls_when_the_proxy_does(
    dockerfile: DockerfileParser, health_server: tuple[http.server.HTTPServer, Path]
) -> None:
    server, combined = health_server
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(combined)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _Health.status = 200
    port = str(server.server_address[1])
    assert run_healthcheck(dockerfile, {"OPENAI_PROXY_PORT": port}) != 0  # plain HTTP to TLS
    tls = {"OPENAI_PROXY_PORT": port, "OPENAI_PROXY_TLS_CERT": str(combined)}
    assert run_healthcheck(dockerfile, tls) == 0


# ---------------------------------------------------------------- Kubernetes


def manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """Every resource, by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, document["kind"]
            found[document["kind"]] = document
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifests_validate_against_the_kubernetes_schemas(
    manifests: dict[str, dict[str, Any]], version: str
) -> None:
    assert set(manifests) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for resource in manifests.values():
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field(manifests: dict[str, dict[str, Any]]) -> None:
    deployment = copy.deepcopy(manifests["Deployment"])
    container(deployment)["readinesProbe"] = container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(deployment)["containers"]
    result: dict[str, Any] = only
    return result


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(deployment).get("env", [])}


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "1", "192Mi") as a number (cores or bytes)."""
    units = {
        "m": 1e-3,
        "": 1,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
    }
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    assert match is not None, f"not a quantity: {text!r}"
    return float(match.group(1)) * units[match.group(2) or ""]


def test_probes_ports_and_service_agree(
    manifests: dict[str, dict[str, Any]], dockerfile: DockerfileParser
) -> None:
    deployment, service = manifests["Deployment"], manifests["Service"]
    proxy = container(deployment)
    ports = {port["name"]: port["containerPort"] for port in proxy["ports"]}
    assert ports == {"http": 8080}
    assert env_of(deployment)["OPENAI_PROXY_PORT"]["value"] == "8080"
    assert values(stages(dockerfile)[-1], "EXPOSE") == ["8080"]
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in ports


def test_the_grace_period_outlasts_the_prestop_sleep_and_the_drain(
    manifests: dict[str, dict[str, Any]],
) -> None:
    deployment = manifests["Deployment"]
    spec = pod_spec(deployment)
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert 1 <= pre_stop <= 15  # long enough for endpoints to update, short of the drain
    drain = int(
        env_of(deployment).get("OPENAI_PROXY_DRAIN_SECONDS", {}).get("value", DEFAULT_DRAIN_SECONDS)
    )
    grace = spec["terminationGracePeriodSeconds"]  # written out, not Kubernetes' default 30
    assert grace > pre_stop + drain, (grace, pre_stop, drain)


def test_the_api_key_comes_from_a_secret_and_settings_are_documented(
    manifests: dict[str, dict[str, Any]], proxy_flags: set[str]
) -> None:
    deployment = manifests["Deployment"]
    env = env_of(deployment)
    assert set(env) <= DOCUMENTED_ENV, set(env) - DOCUMENTED_ENV
    assert "secretKeyRef" in env["OPENAI_API_KEY"]["valueFrom"]
    assert "value" not in env["OPENAI_API_KEY"]
    assert not re.search(r"sk-[A-Za-z0-9]", (MANIFESTS / "deployment.yaml").read_text())
    args = container(deployment)["args"]
    assert {a for a in args if a.startswith("--")} <= proxy_flags
    assert args[args.index("--host") + 1] == "0.0.0.0"


def test_only_the_balancer_is_trusted_to_name_clients(
    manifests: dict[str, dict[str, Any]],
) -> None:
    """X-Forwarded-For is believed from the balancer's own addresses, not from a network
    other workloads share (the first manifest trusted 10.0.0.0/8)."""
    env = env_of(manifests["Deployment"])
    entries = [e.strip() for e in env["OPENAI_PROXY_TRUSTED_PROXIES"]["value"].split(",")]
    for entry in entries:
        network = ipaddress.ip_network(entry, strict=True)
        # A balancer's addresses: a few, never a whole network.
        assert network.prefixlen >= (28 if network.version == 4 else 124), entry


def test_the_pod_runs_as_the_image_user_on_a_read_only_root(
    manifests: dict[str, dict[str, Any]], dockerfile: DockerfileParser
) -> None:
    deployment = manifests["Deployment"]
    pod, proxy = pod_spec(deployment), container(deployment)
    (user,) = values(stages(dockerfile)[-1], "USER")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True
    assert proxy["securityContext"]["allowPrivilegeEscalation"] is False
    assert proxy["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
    (tmp,) = (v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
    assert "emptyDir" in tmp


def test_resources_are_sized_from_the_measurements(manifests: dict[str, dict[str, Any]]) -> None:
    deployment, hpa = manifests["Deployment"], manifests["HorizontalPodAutoscaler"]
    resources = container(deployment)["resources"]
    requests, limits = resources["requests"], resources["limits"]
    for name in ("cpu", "memory"):
        assert quantity(requests[name]) <= quantity(limits[name]), name
    workers = int(env_of(deployment).get("OPENAI_PROXY_WORKERS", {}).get("value", 1))
    assert quantity(limits["cpu"]) >= workers  # each worker process can use a core
    max_sessions = int(
        env_of(deployment).get("OPENAI_PROXY_MAX_SESSIONS", {}).get("value", DEFAULT_MAX_SESSIONS)
    )
    idle_full = RSS_AT_START_MIB * 2**20 + max_sessions * RSS_PER_IDLE_SESSION_KIB * 2**10
    assert quantity(requests["memory"]) >= idle_full * 1.5  # headroom for audio in flight
    cheapest, dearest = CPU_PER_CONVERSATION_SECOND
    # A full pod does not saturate its core (latency would suffer before /readyz said full).
    assert max_sessions * dearest <= 0.8 * min(quantity(limits["cpu"]), workers)
    # The autoscaler adds a pod before a pod is full: the CPU it targets is reached by
    # fewer conversations than --max-sessions lets in.
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    target = metric["resource"]["target"]["averageUtilization"] / 100 * quantity(requests["cpu"])
    assert target / cheapest < max_sessions


def test_autoscaler_and_disruption_budget_point_at_the_deployment(
    manifests: dict[str, dict[str, Any]],
) -> None:
    deployment, hpa, pdb = (
        manifests["Deployment"],
        manifests["HorizontalPodAutoscaler"],
        manifests["PodDisruptionBudget"],
    )
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        deployment["kind"],
        deployment["metadata"]["name"],
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # A node drain never takes every replica at once.
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"]
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]


def test_the_image_is_this_version(manifests: dict[str, dict[str, Any]]) -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    image = container(manifests["Deployment"])["image"]
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    (retag,) = kustomization["images"]
    assert image == f"{retag['name']}:{version.group(1)}"
    assert retag["newTag"] == version.group(1)
