"""deploy/: the Compose file, the Kubernetes manifests and the HAProxy, Prometheus and Grafana configurations,
checked as far as this machine allows (no Docker, kubectl or network here): they parse, every variable
they set is read by Wharf's code (or by the third-party program named), every command they run exists and
takes the options given, HAProxy accepts its configuration and, pointed at a live hub, health-checks it and
refuses /metrics, the Ingress does not route /metrics, and the probes' paths answer on a live hub."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import requests
import yaml

from tests.hub.support import hub_env, run_python
from tests.live import BIN, REPO_ROOT, free_port, start_hub, wait_until

DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
APP_DIR = "/srv/wharf/app"  # where deploy/Dockerfile puts the repository
WHARF_IMAGES = {"${WHARF_IMAGE:-wharf:local}", "registry.example.com/wharf:latest"}

# Variables read by third-party software rather than by Wharf's code, by exact name or prefix.
THIRD_PARTY_VARIABLES = {
    "REMAP_SIGTERM": "Celery: TERM handled as QUIT",
    "PATH": "the shell",
}
THIRD_PARTY_PREFIXES = {
    "AWS_": "boto3",
    "POSTGRES_": "the postgres image",
    "MINIO_": "the MinIO image",
    "GF_": "Grafana",
    "PYTHON": "the Python interpreter",
    "PIP_": "pip",
}

# --- Reading the files -----------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml.example")]
    return sorted(set(files))


@cache
def _documents(path: Path) -> tuple:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


@cache
def _compose() -> dict:
    (compose,) = _documents(DEPLOY / "compose.yaml")
    return compose


def _manifests(*, examples: bool = True) -> list[dict]:
    """Every Kubernetes object under deploy/kubernetes/ (the example Secrets too, unless `examples` is False)."""
    paths = [*KUBERNETES.rglob("*.yaml")] + ([*KUBERNETES.rglob("*.yaml.example")] if examples else [])
    return [doc for path in sorted(paths) for doc in _documents(path)]


def _objects(kind: str) -> list[dict]:
    return [doc for doc in _manifests() if doc["kind"] == kind]


def _wharf_services() -> dict[str, dict]:
    return {name: service for name, service in _compose()["services"].items() if service.get("image") in WHARF_IMAGES}


def _pod_containers() -> list[tuple[str, dict]]:
    """(workload name, container) of every Deployment and Job."""
    return [(doc["metadata"]["name"], container)
            for doc in _manifests() if doc["kind"] in {"Deployment", "Job"}
            for container in doc["spec"]["template"]["spec"]["containers"]]


def _compose_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {name: str(value) for name, value in environment.items()}


def _container_environment(container: dict) -> dict[str, str]:
    """A container's variables: `env` and every key of the ConfigMaps and Secrets named in `envFrom`."""
    sources = {(doc["kind"], doc["metadata"]["name"]): {**doc.get("data", {}), **doc.get("stringData", {})}
               for doc in _manifests() if doc["kind"] in {"ConfigMap", "Secret"}}
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source["configMapRef"] if kind == "ConfigMap" else source["secretRef"]
        assert (kind, ref["name"]) in sources, f"{kind} {ref['name']} is not in deploy/kubernetes/"
        environment.update({name: str(value) for name, value in sources[kind, ref["name"]].items()})
    environment.update({item["name"]: str(item.get("value", "")) for item in container.get("env", [])})
    return environment


def _dockerfile() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (instruction, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _dockerfile_environment() -> dict[str, str]:
    environment = {}
    for instruction, arguments in _dockerfile():
        if instruction == "ENV":
            environment.update(item.split("=", 1) for item in shlex.split(arguments))
    return environment


# --- The variables the code reads ------------------------------------------------------------------

SOURCE_ROOTS = ("hub", "lib", "builds", "registry", "accounts", "repositories", "webhooks", "oci")
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _reads_environment(function: ast.FunctionDef) -> bool:
    return any(_dotted(node) in {"os.environ", "os.getenv"} for node in ast.walk(function))


@cache
def _variables_read_by_code() -> frozenset[str]:
    """Names the code reads from the environment: the first argument of env(), envint(), envsecret() (which
    also reads NAME_FILE), os.environ.get(), os.getenv(), os.environ[...], or of a function of the same
    module that reads os.environ itself (gunicorn.conf.py's _seconds)."""
    files = [REPO_ROOT / "gunicorn.conf.py", REPO_ROOT / "manage.py"]
    for root in SOURCE_ROOTS:
        files += [path for path in (REPO_ROOT / root).rglob("*.py") if "migrations" not in path.parts]
    names: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        local_readers = {node.name for node in ast.walk(tree)
                         if isinstance(node, ast.FunctionDef) and _reads_environment(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and _dotted(node.value) == "os.environ":
                key = node.slice
            elif isinstance(node, ast.Call) and node.args:
                callee = _dotted(node.func)
                if not ("env" in callee.lower() or callee in local_readers):
                    continue
                key = node.args[0]
            else:
                continue
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and ENV_NAME.fullmatch(key.value):
                names.add(key.value)
                if isinstance(node, ast.Call) and "secret" in _dotted(node.func).lower():
                    names.add(f"{key.value}_FILE")
    return frozenset(names)


def _unknown_variables(names) -> list[str]:
    known = _variables_read_by_code()
    return sorted(name for name in names
                  if name not in known and name not in THIRD_PARTY_VARIABLES
                  and not name.startswith(tuple(THIRD_PARTY_PREFIXES)))


def test_the_code_scan_finds_what_settings_and_gunicorn_read():
    """The scan below the variable checks: it must see the helpers' reads, NAME_FILE of secrets, and
    gunicorn.conf.py's own readers, or every later check would pass for the wrong reason."""
    names = _variables_read_by_code()
    assert {"HUB_DATA_DIR", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SECRET_KEY_FILE", "HUB_ENCRYPTION_KEY_FILE",
            "HUB_S3_BUCKET", "HUB_WEB_WORKERS", "HUB_HEADER_TIMEOUT", "HUB_BIND", "PORT"} <= names
    assert "HUB_NO_SUCH_SETTING" not in names
    assert _unknown_variables(["HUB_NO_SUCH_SETTING", "AWS_REGION", "HUB_S3_BUCKET"]) == ["HUB_NO_SUCH_SETTING"]


# --- Everything parses -----------------------------------------------------------------------------


def test_every_yaml_and_json_file_parses():
    yaml_files = _yaml_files()
    assert DEPLOY / "compose.yaml" in yaml_files and KUBERNETES / "web.yaml" in yaml_files
    for path in yaml_files:
        assert _documents(path), f"{path} holds no document"
    json_files = sorted(DEPLOY.rglob("*.json"))
    assert json_files
    for path in json_files:
        json.loads(path.read_text())


def test_compose_follows_the_compose_specification():
    """deploy/compose.yaml against the Compose Specification's schema (deploy/schemas/, see its README):
    unknown keys, misspelt conditions and wrong types fail here rather than at `docker compose up`."""
    import jsonschema

    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, error.path))}: {error.message[:200]}" for error in validator.iter_errors(_compose())]
    assert not errors, "\n".join(errors)
    broken = json.loads(json.dumps(_compose()))
    broken["services"]["web1"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert list(validator.iter_errors(broken))


def test_the_kubernetes_objects_are_complete_and_namespace_less():
    kinds = {}
    for doc in _manifests():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert "namespace" not in doc["metadata"], f"{doc['kind']} {doc['metadata']['name']} names a namespace"
        kinds.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
    assert {"Deployment", "Service", "Ingress", "PodDisruptionBudget", "Job", "ConfigMap", "Secret"} <= set(kinds)
    deployments = {doc["metadata"]["name"]: doc for doc in _objects("Deployment")}
    assert deployments["wharf-web"]["spec"]["replicas"] >= 2
    assert deployments["wharf-beat"]["spec"]["replicas"] == 1
    for doc in deployments.values():
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    (budget,) = _objects("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == deployments["wharf-web"]["spec"]["selector"]["matchLabels"]
    for name, container in _pod_containers():
        assert container.get("resources", {}).get("requests"), f"{name} has no resource requests"


def test_the_secrets_shipped_are_placeholders_and_never_applied():
    """No secret in the repository: the example Secrets hold placeholders only, and their file name keeps
    them out of `kubectl apply -f deploy/kubernetes/`."""
    secrets = _objects("Secret")
    assert secrets
    for path in KUBERNETES.rglob("*.yaml"):
        assert all(doc["kind"] != "Secret" for doc in _documents(path)), f"{path} would apply a Secret"
    for secret in secrets:
        for name, value in secret["stringData"].items():
            assert "<" in value and ">" in value, f"{secret['metadata']['name']}.{name} is not a placeholder"


def test_compose_takes_every_secret_from_the_environment():
    text = (DEPLOY / "compose.yaml").read_text()
    for name in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "WHARF_S3_SECRET_KEY", "HUB_METRICS_TOKEN",
                 "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{name}:?set {name}}}" in text, f"{name} is not required from the environment"
    example = dict(line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required <= set(example), f"not in .env.example: {sorted(required - set(example))}"
    for name in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "WHARF_S3_SECRET_KEY", "HUB_METRICS_TOKEN"):
        assert example[name] == "", f".env.example gives {name} a value"


# --- Every variable set exists ---------------------------------------------------------------------


def test_every_variable_set_for_wharf_exists_in_the_code():
    variables = {}
    for name, service in _wharf_services().items():
        variables.update(dict.fromkeys(_compose_environment(service), f"compose {name}"))
    for name, container in _pod_containers():
        variables.update(dict.fromkeys(_container_environment(container), f"kubernetes {name}"))
    variables.update(dict.fromkeys(_dockerfile_environment(), "Dockerfile ENV"))
    commented = re.findall(r"#\s*(HUB_\w+|EMAIL_URL)\s*:", (KUBERNETES / "configmap.yaml").read_text())
    variables.update(dict.fromkeys(commented, "configmap.yaml (commented)"))
    assert {"DATABASE_URL", "REDIS_URL", "HUB_PUBLIC_URL", "HUB_S3_BUCKET"} <= set(variables)
    unknown = _unknown_variables(variables)
    assert not unknown, "set but read by no code: " + ", ".join(f"{name} ({variables[name]})" for name in unknown)


def test_every_variable_set_for_another_program_is_its_own_or_read_by_its_configuration():
    """Services of other images: their variables are theirs (a known prefix) or read by the command or the
    configuration file the service runs (HAProxy's "${WHARF_HOST}", the s3-init script's $$NAME)."""
    for name, service in _compose()["services"].items():
        if name in _wharf_services():
            continue
        used = json.dumps([service.get("command"), service.get("entrypoint")])
        for volume in service.get("volumes", []):
            source = DEPLOY / volume.split(":", 1)[0]
            if volume.startswith("./") and source.is_file():
                used += source.read_text()
        for variable in _compose_environment(service):
            if variable.startswith(tuple(THIRD_PARTY_PREFIXES)):
                continue
            assert f"${{{variable}}}" in used or f"$${variable}" in used, f"{name}: {variable} is read by nothing"


def test_the_worker_serves_metrics_where_prometheus_scrapes():
    (prometheus,) = _documents(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    worker = _compose_environment(_compose()["services"]["worker"])
    assert worker["HUB_WORKER_METRICS_BIND"] == "0.0.0.0"
    assert jobs["wharf-worker"]["dns_sd_configs"][0]["port"] == int(worker["HUB_WORKER_METRICS_PORT"])
    assert jobs["wharf-worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    web = {name for name, service in _wharf_services().items() if service["command"][0] == "gunicorn"}
    assert set(jobs["wharf-web"]["static_configs"][0]["targets"]) == {f"{name}:8000" for name in web}
    for service in _wharf_services().values():
        if not service.get("environment"):
            continue  # the keys step
        hosts = _compose_environment(service)["HUB_EXTRA_HOSTS"].split(",")
        assert web <= set(hosts), "a node must accept the Host Prometheus sends (its service name)"
    for document in (prometheus, *_documents(DEPLOY / "prometheus" / "prometheus-kubernetes.yml")):
        for job in document["scrape_configs"]:
            assert job["authorization"]["credentials_file"], job["job_name"]
    for name, container in _pod_containers():
        if name == "wharf-worker":
            environment = _container_environment(container)
            port = int(environment["HUB_WORKER_METRICS_PORT"])
            assert {"containerPort": port, "name": "metrics"} in container["ports"]


# --- Every command exists --------------------------------------------------------------------------


def _commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every Wharf process the deploy files start (the image's entry point stripped)."""
    commands = [(f"compose {name}", [str(part) for part in service["command"]])
                for name, service in _wharf_services().items()]
    commands += [(f"kubernetes {name}", [str(part) for part in container["args"]])
                 for name, container in _pod_containers()]
    for instruction, arguments in _dockerfile():
        if instruction == "CMD":
            commands.append(("Dockerfile CMD", json.loads(arguments)))
    return commands


@cache
def _celery_help(subcommand: str) -> str:
    result = subprocess.run([str(BIN / "celery"), "-A", "hub", subcommand, "--help"], cwd=REPO_ROOT,
                            env=hub_env(tempfile.mkdtemp(prefix="deploy-celery-")), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _check_command(where: str, argv: list[str]) -> None:
    from django.core.management import CommandError, get_commands, load_command_class

    program, *rest = argv
    if program == "gunicorn":
        from gunicorn.config import Config

        options = Config().parser().parse_args(rest)
        assert (REPO_ROOT / options.config).is_file(), f"{where}: no {options.config}"
    elif program == "celery":
        assert rest[:2] == ["-A", "hub"], f"{where}: {argv}"
        subcommand, options = rest[2], rest[3:]
        assert subcommand in {"worker", "beat"}, f"{where}: {subcommand}"
        help_text = _celery_help(subcommand)
        for option in options:
            if option.startswith("-"):
                assert re.search(rf"(^|[\s,]){re.escape(option)}\b", help_text, re.M), \
                    f"{where}: celery {subcommand} {option}"
        if "-Q" in options:
            from hub.celery import app

            queues = set(options[options.index("-Q") + 1].split(","))
            assert queues <= {queue.name for queue in app.conf.task_queues}, f"{where}: {queues}"
    elif program == "python" and rest[0] == "manage.py":
        subcommand = rest[1]
        commands = get_commands()
        assert subcommand in commands, f"{where}: no manage.py {subcommand}"
        parser = load_command_class(commands[subcommand], subcommand).create_parser("manage.py", subcommand)
        try:
            parser.parse_args(rest[2:])
        except CommandError as error:
            raise AssertionError(f"{where}: {error}") from None
    elif program == "python" and rest[0] == "-c":
        compile(rest[1], where, "exec")
        for module in re.findall(r"^import ([\w.]+)$", rest[1], re.M):
            assert importlib.util.find_spec(module), f"{where}: no module {module}"
    else:
        raise AssertionError(f"{where}: unknown program {program!r}")


def test_every_command_exists_and_takes_its_options():
    commands = _commands()
    programs = {argv[0] for _, argv in commands}
    assert {"gunicorn", "celery", "python"} <= programs
    for where, argv in commands:
        _check_command(where, argv)


def test_the_command_checks_refuse_what_does_not_exist():
    for argv in (["python", "manage.py", "migrat"], ["python", "manage.py", "migrate", "--no-such-option"],
                 ["celery", "-A", "hub", "worker", "--no-such-option"], ["celery", "-A", "hub", "worker", "-Q", "nope"],
                 ["gunicorn", "--config", "no-such.conf.py"], ["uwsgi"]):
        with pytest.raises((AssertionError, SystemExit)):
            _check_command("test", argv)


def test_the_dockerfile_uses_files_that_exist():
    instructions = _dockerfile()
    for instruction, arguments in instructions:
        if instruction == "COPY":
            *sources, _ = [part for part in shlex.split(arguments) if not part.startswith("--")]
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"
        if instruction == "ENTRYPOINT":
            (entrypoint,) = json.loads(arguments)
            script = REPO_ROOT / Path(entrypoint).relative_to(APP_DIR)
            assert script.is_file() and os.access(script, os.X_OK), script
            subprocess.run(["sh", "-n", str(script)], check=True)
    workdir = next(arguments for instruction, arguments in instructions if instruction == "WORKDIR")
    assert workdir == APP_DIR
    run = " ".join(arguments for instruction, arguments in instructions if instruction == "RUN")
    assert "-r /tmp/requirements.txt" in run and "manage.py collectstatic --noinput" in run
    dockerignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "data", "deploy/.env"} <= set(dockerignore)


def test_the_images_collectstatic_step_bakes_no_key(tmp_path):
    """What the Dockerfile runs: collectstatic on a throwaway data dir with a throwaway secret key collects
    the static files and makes no key, so no key ends up in the image."""
    env = hub_env(tmp_path / "build-data", SECRET_KEY="collectstatic-only-not-a-secret")
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"], cwd=REPO_ROOT,
                   env=env, check=True, timeout=120)
    assert (tmp_path / "build-data" / "static" / "staticfiles.json").is_file()
    assert list((tmp_path / "build-data" / "keys").iterdir()) == []


# --- /metrics is not exposed -----------------------------------------------------------------------


def test_the_ingress_routes_everything_but_metrics_with_the_registrys_settings():
    ingresses = _objects("Ingress")
    public = [ingress for ingress in ingresses
              if any(path["path"] == "/" for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"])]
    assert len(public) == 1
    annotations = public[0]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-body-size"] == "0"
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert annotations[prefix + "proxy-read-timeout"] == annotations[prefix + "proxy-send-timeout"] == "3600"
    assert "non_idempotent" not in annotations.get(prefix + "proxy-next-upstream", "")
    hosts = {rule["host"] for rule in public[0]["spec"]["rules"]}
    for host in hosts:
        routes = [(ingress, path) for ingress in ingresses for rule in ingress["spec"]["rules"] if rule["host"] == host
                  for path in rule["http"]["paths"]]
        metrics = [(ingress, path) for ingress, path in routes if path["path"] in {"/metrics", "/metrics/"}]
        assert metrics, f"{host}: /metrics falls under / and is served"
        for ingress, path in metrics:
            assert path["pathType"] == "Prefix"  # /metrics and everything under it
            denied = ingress["metadata"]["annotations"][prefix + "denylist-source-range"].split(",")
            assert {"0.0.0.0/0", "::/0"} <= set(denied), f"{host}: /metrics is open to some addresses"
    for ingress in ingresses:
        assert not any("snippet" in name for name in ingress["metadata"].get("annotations", {}))


def _haproxy_environment() -> dict[str, str]:
    return {**os.environ, "WHARF_HOST": "hub.test", "WHARF_S3_HOST": "s3.hub.test"}


def _self_signed_pem(path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.test")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_haproxy_accepts_the_configuration(tmp_path):
    """`haproxy -c` as the proxy service runs it (-C: `crt certs/` is relative), with a certificate in
    certs/; the only warnings allowed are the compose names that do not resolve here (init-addr none)."""
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / ".gitignore").write_text((DEPLOY / "haproxy" / "certs" / ".gitignore").read_text())
    _self_signed_pem(tmp_path / "certs" / "hub.pem")
    config = DEPLOY / "haproxy" / "haproxy.cfg"
    result = subprocess.run(["haproxy", "-c", "-C", str(tmp_path), "-f", str(config)], env=_haproxy_environment(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "[WARNING]" in line]
    assert all("could not resolve address" in line for line in warnings), warnings
    without_certificate = subprocess.run(["haproxy", "-c", "-C", str(tmp_path / "certs" / "none"), "-f", str(config)],
                                         env=_haproxy_environment(), capture_output=True, text=True, timeout=30)
    assert without_certificate.returncode != 0
    compose_servers = set(re.findall(r"^\s+server (web\d+) \1:8000 check$", config.read_text(), re.M))
    assert compose_servers == {name for name, service in _wharf_services().items()
                               if service["command"][0] == "gunicorn"}


# --- The probes answer on a live hub ---------------------------------------------------------------

METRICS_TOKEN = "deploy-test-metrics-token"


def _extra_hosts(platform: str) -> list[str]:
    """HUB_EXTRA_HOSTS of the web nodes of `platform` (compose or kubernetes)."""
    if platform == "compose":
        return _compose_environment(_compose()["services"]["web1"])["HUB_EXTRA_HOSTS"].split(",")
    (web,) = [container for name, container in _pod_containers() if name == "wharf-web"]
    return _container_environment(web)["HUB_EXTRA_HOSTS"].split(",")


@pytest.fixture(scope="module")
def deploy_hub(artifacts_dir, django_db_setup):
    """A live hub (gunicorn, no worker) with the deploy files' HUB_EXTRA_HOSTS and a metrics token."""
    hosts = {host for platform in ("compose", "kubernetes") for host in _extra_hosts(platform)}
    hub = start_hub(artifacts_dir, with_worker=False, HUB_EXTRA_HOSTS=",".join(sorted(hosts)),
                    HUB_BEHIND_PROXY="true", HUB_METRICS_TOKEN=METRICS_TOKEN)
    yield hub
    hub.stop()


def _probes() -> list[tuple[str, str, dict[str, str]]]:
    """(where, path, headers) of every health check the deploy files declare."""
    probes = []
    for name, container in _pod_containers():
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind in container:
                get = container[kind]["httpGet"]
                assert get["port"] in {port["name"] for port in container["ports"]} | {port["containerPort"]
                                                                                      for port in container["ports"]}
                headers = {header["name"]: header["value"] for header in get.get("httpHeaders", [])}
                probes.append((f"kubernetes {name} {kind}", get["path"], headers))
    for name, service in _wharf_services().items():
        if "healthcheck" in service:
            code = service["healthcheck"]["test"][-1]
            path = re.search(r"http://127\.0\.0\.1:8000(/\w+)", code).group(1)
            headers = dict(re.findall(r"'(Host)': '([\w.-]+)'", code))
            probes.append((f"compose {name} healthcheck", path, headers))
    config = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    for path, host in re.findall(r"http-check send meth GET uri (/\S+) ver HTTP/1.1 hdr Host (\S+)", config):
        if not path.startswith("/minio/"):
            probes.append(("compose haproxy check", path, {"Host": host}))
    return probes


def test_the_probes_paths_answer_on_a_live_hub(deploy_hub):
    probes = _probes()
    assert {path for _, path, _ in probes} == {"/healthz", "/readyz"}
    from django.http.request import validate_host

    for where, path, headers in probes:
        # The Host a probe sends is one its own platform's nodes accept (kubelet would send the pod address).
        assert validate_host(headers["Host"], _extra_hosts(where.split()[0])), where
        response = requests.get(f"{deploy_hub.url}{path}", headers=headers, timeout=10)
        if path == "/healthz":
            assert response.status_code == 200, f"{where}: {response.status_code}"
        else:  # /readyz is 503 while a service is missing, never 404 or a refused Host (400)
            assert response.status_code in {200, 503}, f"{where}: {response.status_code}"
    # A probe by bare address answers too (hub.middleware.OperationsPathsMiddleware); the site still checks Host.
    assert requests.get(f"{deploy_hub.url}/healthz", headers={"Host": "10.1.2.3:8000"}, timeout=10).status_code == 200
    assert requests.get(f"{deploy_hub.url}/", headers={"Host": "10.1.2.3:8000"}, timeout=10).status_code == 400


def _check_status(socket_path: Path) -> dict[str, str]:
    """The last health check result of each server of the `wharf` backend (HAProxy's `show stat`)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(socket_path))
        sock.sendall(b"show stat\n")
        text = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
    header, *rows = [line.split(",") for line in text.lstrip("# ").splitlines() if line]
    stats = [dict(zip(header, row, strict=False)) for row in rows]
    return {row["svname"]: row["check_status"] for row in stats
            if row["pxname"] == "wharf" and row["svname"].startswith("web")}


def test_haproxy_checks_a_live_hub_and_refuses_metrics(deploy_hub, tmp_path):
    """The shipped HAProxy configuration, with its listeners moved to loopback and its servers pointed at a
    live hub: the health checks bring the nodes up (so their Host header is accepted), requests go through,
    and /metrics is refused however it is spelled, while the node itself serves it to the token."""
    port, plain_port = free_port(), free_port()
    config = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    config = re.sub(r"bind :443 ssl .*", f"bind 127.0.0.1:{port}", config)
    config = config.replace("bind :80", f"bind 127.0.0.1:{plain_port}")
    config = re.sub(r"server (web\d+) \1:8000", rf"server \1 127.0.0.1:{deploy_hub.port}", config)
    # A runtime socket to read the checks' results, and checks every 200 ms rather than 2 s.
    config = config.replace("log stdout format raw local0 info", f"stats socket {tmp_path / 'haproxy.sock'}")
    config = config.replace("inter 2s", "inter 200ms")
    assert config.count(f"127.0.0.1:{deploy_hub.port}") == 2 and "ssl" not in config
    (tmp_path / "haproxy.cfg").write_text(config)
    with open(tmp_path / "haproxy.log", "wb") as log:
        process = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
                                   env=_haproxy_environment(), stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Host": "web1", "Authorization": f"Bearer {METRICS_TOKEN}"}
        # HAProxy counts a server up until its checks fail: wait for both checks to have passed (L7OK).
        wait_until(lambda: _check_status(tmp_path / "haproxy.sock") == {"web1": "L7OK", "web2": "L7OK"},
                   timeout=20, message="haproxy's health checks of the nodes to pass")
        assert requests.get(f"{base}/healthz", headers=headers, timeout=5).status_code == 200
        assert requests.get(f"{base}/v2/", headers=headers, timeout=5).status_code == 401
        for spelling in ("/metrics", "/%6detrics", "/metrics/", "/METRICS", "/metrics?x=1"):
            response = requests.get(f"{base}{spelling}", headers=headers, timeout=5)
            assert response.status_code == 404 and "wharf_" not in response.text, spelling
        redirect = requests.get(f"http://127.0.0.1:{plain_port}/v2/", headers={"Host": "hub.test"},
                                allow_redirects=False, timeout=5)
        assert redirect.status_code == 301 and redirect.headers["Location"] == "https://hub.test/v2/"
    finally:
        process.terminate()
        process.wait(timeout=10)
    direct = requests.get(f"{deploy_hub.url}/metrics", headers={**headers, "Host": "web1:8000"}, timeout=10)
    assert direct.status_code == 200 and "wharf_http_requests_total" in direct.text


def test_the_keys_step_makes_every_key_the_entrypoint_requires(tmp_path):
    """compose's `keys` step (and the README's recipe for the Kubernetes Secret) runs `import hub.wsgi` on an
    empty keys/ folder: it must make every file deploy/entrypoint.sh refuses to start without."""
    (keys,) = [service for name, service in _wharf_services().items() if name == "keys"]
    code = keys["command"][-1]
    run_python(hub_env(tmp_path / "data"), code)
    made = {path.name for path in (tmp_path / "data" / "keys").iterdir()}
    script = (DEPLOY / "entrypoint.sh").read_text()
    required = set(re.search(r'required="([^"$]+)"', script).group(1).split())
    required |= set(re.findall(r'required="\$required ([\w.]+)"', script))
    assert required == {"registry-token.key", "registry-token.crt", "image-signing.key", "secret_key", "encryption.key"}
    assert required <= made, f"the keys step does not make {sorted(required - made)}"


def test_the_entrypoint_copies_the_shared_keys_and_refuses_to_start_without_them(tmp_path):
    """deploy/entrypoint.sh with a keys folder mounted read-only at /run/wharf/keys, as compose and Kubernetes
    mount it (in a mount namespace of its own, over a private /run): the node starts with exactly those keys,
    copied into its own data dir with mode 0600; a missing key stops it before Wharf starts."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    made = tmp_path / "made"
    run_python(hub_env(made), "import hub.wsgi")  # the keys step
    check = ("import hashlib, pathlib, stat, hub.wsgi\n"
             "from django.conf import settings\n"
             "keys = pathlib.Path(settings.KEYS_DIR)\n"
             "print(settings.SECRET_KEY)\n"
             "for path in sorted(keys.iterdir()):\n"
             "    digest = hashlib.sha256(path.read_bytes()).hexdigest()\n"
             "    print(path.name, oct(stat.S_IMODE(path.stat().st_mode)), digest)\n")

    def run_node(shared: Path, data_dir: Path) -> subprocess.CompletedProcess:
        script = (f"set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/wharf/keys; "
                  f"mount --bind {shared} /run/wharf/keys; mount -o remount,bind,ro /run/wharf/keys; "
                  f"exec {DEPLOY / 'entrypoint.sh'} {sys.executable} -c {shlex.quote(check)}")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=REPO_ROOT,
                              env=hub_env(data_dir), capture_output=True, text=True, timeout=60)

    result = run_node(made / "keys", tmp_path / "node")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (made / "keys" / "secret_key").read_text().strip()
    expected = [f"{path.name} 0o600 {hashlib.sha256(path.read_bytes()).hexdigest()}"
                for path in sorted((made / "keys").iterdir())]
    assert lines[1:] == expected

    incomplete = tmp_path / "incomplete"
    shutil.copytree(made / "keys", incomplete)
    (incomplete / "image-signing.key").unlink()
    result = run_node(incomplete, tmp_path / "node2")
    assert result.returncode == 1
    assert "/run/wharf/keys/image-signing.key is missing" in result.stderr
    assert not (tmp_path / "node2" / "keys" / "image-signing.key").exists()


# --- Prometheus and Grafana ------------------------------------------------------------------------


def test_the_dashboard_queries_metrics_the_code_exports():
    """Every wharf_* series the dashboard queries is made by the code: a Counter for *_total, a Histogram
    for *_bucket, any metric (a collector's gauge too) for a bare name."""
    dashboard = json.loads((DEPLOY / "grafana" / "wharf-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    code = (REPO_ROOT / "lib" / "metrics.py").read_text() + (REPO_ROOT / "hub" / "metrics.py").read_text()
    queried = {name for expression in expressions for name in re.findall(r"\bwharf_\w+", expression)}
    assert {"wharf_http_requests_total", "wharf_http_request_duration_seconds_bucket"} <= queried
    for name in queried:
        if name.endswith("_total"):
            assert re.search(rf'Counter\(\s*"{name.removesuffix("_total")}"', code), name
        elif name.endswith("_bucket"):
            assert re.search(rf'Histogram\(\s*"{name.removesuffix("_bucket")}"', code), name
        else:
            assert f'"{name}"' in code, name


def _relabel(rules: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep and replace: what the scrape jobs use) of one target's labels."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if rule.get("action", "replace") == "keep":
            if not match:
                return None
        elif match:
            replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
            labels[rule["target_label"]] = match.expand(replacement)
    return labels


def test_prometheus_in_kubernetes_scrapes_web_pods_by_a_name_they_accept():
    """kubelet's and Prometheus's bare pod address is a Host Django refuses: the web job scrapes each pod by
    its DNS name, and the pods' HUB_EXTRA_HOSTS accepts that name (and not another host's)."""
    from django.http.request import validate_host

    (config,) = _documents(DEPLOY / "prometheus" / "prometheus-kubernetes.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web_pod = {"__address__": "10.1.2.3:8000", "__meta_kubernetes_pod_ip": "10.1.2.3",
               "__meta_kubernetes_namespace": "registry", "__meta_kubernetes_pod_container_port_number": "8000",
               "__meta_kubernetes_pod_container_port_name": "http", "__meta_kubernetes_pod_name": "wharf-web-1",
               "__meta_kubernetes_pod_label_app_kubernetes_io_name": "wharf",
               "__meta_kubernetes_pod_label_app_kubernetes_io_component": "web"}
    target = _relabel(jobs["wharf-web"]["relabel_configs"], web_pod)
    assert target["__address__"] == "10-1-2-3.registry.pod.cluster.local:8000"
    assert _relabel(jobs["wharf-worker"]["relabel_configs"], web_pod) is None
    worker_pod = {**web_pod, "__meta_kubernetes_pod_label_app_kubernetes_io_component": "worker",
                  "__meta_kubernetes_pod_container_port_name": "metrics", "__address__": "10.1.2.4:9808"}
    assert _relabel(jobs["wharf-worker"]["relabel_configs"], worker_pod)["__address__"] == "10.1.2.4:9808"
    assert _relabel(jobs["wharf-web"]["relabel_configs"], worker_pod) is None
    (web,) = [container for name, container in _pod_containers() if name == "wharf-web"]
    allowed = _container_environment(web)["HUB_EXTRA_HOSTS"].split(",")
    assert validate_host(target["__address__"].rsplit(":", 1)[0], allowed)
    assert not validate_host("10.1.2.3", allowed)
    assert not validate_host("evil.example.com", allowed)
