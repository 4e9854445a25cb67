"""deploy/: the image, the Compose stack and the Kubernetes manifests, checked as data (no Docker, no
cluster): every file parses, everything named exists (images, services, ConfigMaps, Secrets, ports,
settings, CLI commands, the work pool), and every Prefect server process gets the same multi-server
settings. The probes at the end break a copy of a manifest and expect the checks to say so."""

from __future__ import annotations

import copy
import importlib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic import SecretStr
from typer.testing import CliRunner

from deployments.cli import build_app
from deployments.names import WORK_POOL_NAME
from tiktok_pipeline.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Prefect's multi-server setup (docs.prefect.io, "Scale self-hosted Prefect"): what every server
#: process (API servers, background services, migrations) must share.
PREFECT_SERVER_SETTINGS = (
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_MIGRATE_ON_START",
    "PREFECT_MESSAGING_BROKER",
    "PREFECT_MESSAGING_CACHE",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
    "PREFECT_REDIS_MESSAGING_URL",
    "PREFECT_SERVER_DOCKET_URL",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
)
#: Settings naming a module Prefect imports (prefect-redis's implementations).
MODULE_SETTINGS = ("PREFECT_MESSAGING_BROKER", "PREFECT_MESSAGING_CACHE", "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING",
                   "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE")
#: Connection URLs: the scheme each must have. They hold passwords, so on Kubernetes they are in a Secret.
URL_SCHEMES = {
    "PREFECT_API_DATABASE_CONNECTION_URL": ("postgresql+asyncpg",),
    "PREFECT_REDIS_MESSAGING_URL": ("redis", "rediss"),
    "PREFECT_SERVER_DOCKET_URL": ("redis", "rediss"),
}
#: The ledger's driver: psycopg 3 (a dependency); the ledger refuses asyncio drivers.
LEDGER_SCHEME = "postgresql+psycopg"
LEDGER_URL = f"{ENV_PREFIX}DATABASE_URL"
#: Settings that are secret (SecretStr fields): only in .env or a Secret, never in a manifest's plain values.
SECRET_SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name, field in Settings.model_fields.items()
                   if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))}
PLACEHOLDER = "CHANGE-ME"


def manifest_files() -> list[Path]:
    return [DOCKERFILE, DEPLOY / "compose.yaml", DEPLOY / "postgres-init.sql", *sorted(K8S.glob("*"))]


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def load_k8s() -> dict[str, list[dict[str, Any]]]:
    """Every Kubernetes document by file name (kustomization.yaml included)."""
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
            for path in sorted(K8S.glob("*.yaml"))}


def interpolate(value: Any) -> str:
    """A Compose value as a container sees it: `${VAR:-default}` is its default, any other `${VAR...}` a stand-in."""
    return re.sub(r"\$\{([A-Za-z0-9_]+)(:?-([^}]*)|:?[?+][^}]*)?\}",
                  lambda m: m.group(3) if m.group(3) is not None else "value-of-" + m.group(1), str(value))


def argv(command: Any) -> list[str]:
    return [interpolate(part) for part in command] if isinstance(command, list) else shlex.split(interpolate(command))


def command_lines(words: list[str]) -> list[list[str]]:
    """The commands a container runs: its argv, or each command of its `sh -c` script."""
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2])
    lines: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", ";"):
            lines.append([])
        else:
            lines[-1].append(word)
    return [line for line in lines if line]


def option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words[:-1] else None


def runs(words: list[str], *prefix: str) -> bool:
    return any(line[: len(prefix)] == list(prefix) for line in command_lines(words))


# --- the processes: (argv, environment) per Compose service or Kubernetes container -----------------


def compose_processes(compose: dict[str, Any]) -> dict[str, tuple[list[str], dict[str, str]]]:
    processes = {}
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        processes[name] = (argv(service.get("command", [])), {k: interpolate(v) for k, v in env.items()})
    return processes


def objects(docs: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for file, found in docs.items() if file != "kustomization.yaml"
            for doc in found if doc.get("kind") == kind and (doc.get("metadata") or {}).get("name")}


def pod_specs(docs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The pod template of every Deployment and Job, by workload name."""
    return {name: doc["spec"]["template"] for kind in ("Deployment", "Job") for name, doc in objects(docs, kind).items()}


def container_env(container: dict[str, Any], docs: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The environment a container gets from its envFrom ConfigMaps and Secrets and its env (which wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(objects(docs, "ConfigMap").get(source["configMapRef"]["name"], {}).get("data", {}))
        if "secretRef" in source:
            env.update(objects(docs, "Secret").get(source["secretRef"]["name"], {}).get("stringData", {}))
    env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
    return {k: str(v) for k, v in env.items()}


def k8s_processes(docs: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[list[str], dict[str, str]]]:
    return {f"{workload}/{container['name']}": ([*container.get("command", []), *container.get("args", [])],
                                               container_env(container, docs))
            for workload, template in pod_specs(docs).items() for container in template["spec"]["containers"]}


# --- checks shared by Compose and Kubernetes (each returns the problems it found) ------------------


def prefect_server_problems(processes: dict[str, tuple[list[str], dict[str, str]]]) -> list[str]:
    servers = {name: env for name, (words, env) in processes.items() if runs(words, "prefect", "server")}
    problems = [f"{name}: {key} not set" for name, env in servers.items() for key in PREFECT_SERVER_SETTINGS if key not in env]
    shared = {name: {key: env.get(key) for key in PREFECT_SERVER_SETTINGS} for name, env in servers.items()}
    if len({tuple(values.items()) for values in shared.values()}) > 1:
        problems.append(f"the Prefect server processes differ in their multi-server settings: {shared}")
    commands = {name: words for name, (words, _) in processes.items() if name in servers}
    apis = [name for name, words in commands.items() if runs(words, "prefect", "server", "start")]
    problems += [f"{name}: an API server must run with --no-services (prefect-services runs them once)"
                 for name in apis if "--no-services" not in commands[name]]
    for prefix in (("prefect", "server", "start"), ("prefect", "server", "services", "start"),
                   ("prefect", "server", "database", "upgrade")):
        if not any(runs(words, *prefix) for words in commands.values()):
            problems.append(f"no process runs `{' '.join(prefix)}`")
    for name, env in servers.items():
        if env.get("PREFECT_API_DATABASE_MIGRATE_ON_START", "").lower() != "false":
            problems.append(f"{name}: PREFECT_API_DATABASE_MIGRATE_ON_START must be false (migrations run once)")
        if env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "").lower() != "false":
            problems.append(f"{name}: PREFECT_SERVER_ANALYTICS_ENABLED must be false")
        for key, schemes in URL_SCHEMES.items():
            if key in env and urlsplit(env[key]).scheme not in schemes:
                problems.append(f"{name}: {key} must be a {' or '.join(schemes)}:// URL")
        for key in MODULE_SETTINGS:
            try:
                importlib.import_module(env.get(key, ""))
            except (ImportError, ValueError):
                problems.append(f"{name}: {key}={env.get(key)!r} is not an importable module")
    return problems


def pipeline_problems(processes: dict[str, tuple[list[str], dict[str, str]]], api_endpoints: set[tuple[str, int]]) -> list[str]:
    """The pipeline's processes: the work pool, the CLI commands, the API they reach, the ledger's URL."""
    problems = []
    runner = CliRunner()
    for name, (words, env) in processes.items():
        for line in command_lines(words):
            if line[:3] == ["prefect", "worker", "start"] or line[:2] == ["tiktok-pipeline", "worker"]:
                if option(line, "--pool") != WORK_POOL_NAME:
                    problems.append(f"{name}: the worker polls {option(line, '--pool')!r}, not {WORK_POOL_NAME!r}")
                if not (option(line, "--limit") or "").isdigit():
                    problems.append(f"{name}: the worker has no numeric --limit (its resources are sized for one)")
            if line[0] == "tiktok-pipeline":
                result = runner.invoke(build_app(), [*line[1:], "--help"])
                if result.exit_code != 0:
                    problems.append(f"{name}: `{' '.join(line)}` is not a command: {result.output.strip()}")
        client = runs(words, "tiktok-pipeline") or runs(words, "prefect", "worker") or runs(words, "prefect", "--no-prompt", "deploy")
        if client:
            url = urlsplit(env.get("PREFECT_API_URL", ""))
            if (url.hostname, url.port) not in api_endpoints or url.path != "/api":
                problems.append(f"{name}: PREFECT_API_URL {env.get('PREFECT_API_URL')!r} is not http://<API server>:<port>/api "
                                f"(API servers: {sorted(api_endpoints)})")
            ledger = env.get(LEDGER_URL, "")
            if urlsplit(ledger).scheme != LEDGER_SCHEME:
                problems.append(f"{name}: {LEDGER_URL} must be a {LEDGER_SCHEME}:// URL (the ledger's driver)")
            where = [(u.hostname, u.port, u.path) for u in (urlsplit(ledger), urlsplit(prefect_database(processes)))]
            if where[0] == where[1]:
                problems.append(f"{name}: the ledger must have a database of its own, not Prefect's")
    return problems


def prefect_database(processes: dict[str, tuple[list[str], dict[str, str]]]) -> str:
    return next((env["PREFECT_API_DATABASE_CONNECTION_URL"] for _, env in processes.values()
                 if "PREFECT_API_DATABASE_CONNECTION_URL" in env), "")


def setting_name_problems(text: str) -> list[str]:
    """Every TIKTOK_PIPELINE_* and PREFECT_* variable named in `text` is a real setting."""
    from prefect.settings import Settings as PrefectSettings
    # The names `prefect config set` accepts (Prefect's own list; prefect is pinned <3.9).
    from prefect.settings.legacy import _get_valid_setting_names
    # PREFECT_REDIS_MESSAGING_*: prefect-redis's settings, not Prefect's.
    from prefect_redis.client import RedisMessagingSettings

    ours = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    prefect = set(_get_valid_setting_names(PrefectSettings)) | {
        f"{RedisMessagingSettings.model_config['env_prefix']}{name}".upper() for name in RedisMessagingSettings.model_fields}
    named = set(re.findall(r"\b(?:TIKTOK_PIPELINE|PREFECT)_[A-Z0-9_]+", text))
    return sorted(f"{name} is not a setting" for name in named
                  if name not in (ours if name.startswith(ENV_PREFIX) else prefect))


# --- Compose -----------------------------------------------------------------------------------


def compose_api_endpoints(compose: dict[str, Any]) -> set[tuple[str, int]]:
    return {(name, int(option(words, "--port") or 4200)) for name, (words, _) in compose_processes(compose).items()
            if runs(words, "prefect", "server", "start")}


def compose_problems(compose: dict[str, Any]) -> list[str]:
    services = compose["services"]
    problems = []
    built = set()
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            context = (DEPLOY / build["context"]).resolve()
            if (context / build.get("dockerfile", "Dockerfile")).resolve() != DOCKERFILE or context != ROOT:
                problems.append(f"{name}: not built from deploy/Dockerfile with the checkout as context")
            built.add(service.get("image"))
        elif not str(service.get("image", "")).startswith(("postgres:", "redis:")):
            problems.append(f"{name}: image {service.get('image')!r} is neither deploy/Dockerfile's nor postgres/redis")
    if len(built) != 1:
        problems.append(f"the services built from deploy/Dockerfile must share one image name, not {built}")
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for dependency in depends:
            if dependency not in services:
                problems.append(f"{name}: depends on {dependency!r}, which is not a service")
            elif isinstance(depends, dict) and depends[dependency].get("condition") == "service_healthy" \
                    and "healthcheck" not in services[dependency]:
                problems.append(f"{name}: waits for {dependency} to be healthy, which has no healthcheck")
        env = service.get("environment") or {}
        problems += [f"{name}: {key} belongs in .env, not in compose.yaml" for key in env if key in SECRET_SETTINGS]
        words = argv(service.get("command", []))
        if runs(words, "tiktok-pipeline") or runs(words, "prefect", "worker"):
            if ".env" not in (service.get("env_file") if isinstance(service.get("env_file"), list) else [service.get("env_file")]):
                problems.append(f"{name}: gets no env_file .env (the pipeline's secrets)")
        if runs(words, "prefect", "server", "start"):
            test = " ".join(service.get("healthcheck", {}).get("test", []))
            if f":{option(words, '--port')}/api/health" not in test:
                problems.append(f"{name}: its healthcheck does not ask /api/health on the port it listens on")
    processes = compose_processes(compose)
    problems += prefect_server_problems(processes)
    problems += pipeline_problems(processes, compose_api_endpoints(compose))
    # Both databases live in the postgres service: Prefect's is POSTGRES_DB, the ledger's made by the init script.
    created = set(re.findall(r"CREATE DATABASE (\w+)", (DEPLOY / "postgres-init.sql").read_text(encoding="utf-8"), re.I))
    databases = {services["postgres"]["environment"]["POSTGRES_DB"], *created}
    for name, (_, env) in processes.items():
        for key in ("PREFECT_API_DATABASE_CONNECTION_URL", LEDGER_URL):
            if key in env and urlsplit(env[key]).path.lstrip("/") not in databases:
                problems.append(f"{name}: {key} names a database the postgres service does not create ({sorted(databases)})")
            if key in env and urlsplit(env[key]).hostname not in services:
                problems.append(f"{name}: {key} names a host that is not a service")
    for key in ("PREFECT_REDIS_MESSAGING_URL", "PREFECT_SERVER_DOCKET_URL"):
        hosts = {urlsplit(env[key]).hostname for _, env in processes.values() if key in env}
        problems += [f"{key}: host {host!r} is not a service" for host in hosts if host not in services]
    return problems


# --- Kubernetes --------------------------------------------------------------------------------


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def container_ports(template: dict[str, Any]) -> set[Any]:
    return {value for container in template["spec"]["containers"] for port in container.get("ports", [])
            for value in (port.get("name"), port["containerPort"]) if value is not None}


def k8s_api_endpoints(docs: dict[str, list[dict[str, Any]]]) -> set[tuple[str, int]]:
    templates = pod_specs(docs)
    endpoints = set()
    for name, service in objects(docs, "Service").items():
        selected = [t for t in templates.values() if matches(service["spec"].get("selector", {}), t["metadata"].get("labels", {}))]
        if any(runs([*c.get("command", []), *c.get("args", [])], "prefect", "server", "start")
               for t in selected for c in t["spec"]["containers"]):
            endpoints |= {(name, port["port"]) for port in service["spec"]["ports"]}
    return endpoints


def quantity(value: Any) -> float:
    """A Kubernetes CPU or memory quantity as a number (2, 500m, 2Gi, 512Mi)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units.get(unit, 1)


def k8s_problems(docs: dict[str, list[dict[str, Any]]], compose: dict[str, Any]) -> list[str]:
    problems = []
    kustomization = docs["kustomization.yaml"][0]
    listed = set(kustomization.get("resources", []))
    present = {path.name for path in K8S.iterdir()} - {"kustomization.yaml"}
    problems += [f"{name} is not listed in kustomization.yaml" for name in sorted(present - listed)]
    problems += [f"kustomization.yaml lists {name}, which is not in deploy/k8s" for name in sorted(listed - present)]
    for file, found in docs.items():
        if file == "kustomization.yaml":
            continue
        problems += [f"{file}: a document without apiVersion, kind or metadata.name" for doc in found
                     if not (doc.get("apiVersion") and doc.get("kind") and (doc.get("metadata") or {}).get("name"))]
    deployments = objects(docs, "Deployment")
    for name, deployment in deployments.items():
        if not matches(deployment["spec"]["selector"].get("matchLabels", {}), deployment["spec"]["template"]["metadata"].get("labels", {})):
            problems.append(f"Deployment {name}: its selector does not match its template's labels")
    for name, service in objects(docs, "Service").items():
        selected = [d["spec"]["template"] for d in deployments.values()
                    if matches(service["spec"].get("selector", {}), d["spec"]["template"]["metadata"].get("labels", {}))]
        if not selected:
            problems.append(f"Service {name}: selects no Deployment")
        for port in service["spec"]["ports"]:
            if selected and port.get("targetPort", port["port"]) not in set().union(*map(container_ports, selected)):
                problems.append(f"Service {name}: targetPort {port.get('targetPort', port['port'])!r} is no declared container port")
    images = {image["name"] for image in kustomization.get("images", [])}
    configmaps, secrets, claims = objects(docs, "ConfigMap"), objects(docs, "Secret"), objects(docs, "PersistentVolumeClaim")
    for workload, template in pod_specs(docs).items():
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in claims:
                problems.append(f"{workload}: volume {volume['name']} claims a PersistentVolumeClaim that is not defined")
        for container in spec["containers"]:
            where = f"{workload}/{container['name']}"
            if container.get("image") not in images:
                problems.append(f"{where}: image {container.get('image')!r} is not the one kustomization.yaml sets ({images})")
            for source in container.get("envFrom", []):
                for ref, defined in (("configMapRef", configmaps), ("secretRef", secrets)):
                    if ref in source and source[ref]["name"] not in defined:
                        problems.append(f"{where}: {ref} {source[ref]['name']!r} is not defined")
            problems += [f"{where}: {item['name']} belongs in a Secret" for item in container.get("env", [])
                         if item["name"] in SECRET_SETTINGS and "value" in item]
            words = [*container.get("command", []), *container.get("args", [])]
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for kind in ("readinessProbe", "livenessProbe"):
                probe = container.get(kind, {}).get("httpGet")
                if probe and probe["port"] not in {*ports, *ports.values()}:
                    problems.append(f"{where}: its {kind} asks port {probe['port']!r}, which it does not declare")
                if runs(words, "prefect", "server", "start"):
                    port = ports.get(probe["port"], probe["port"]) if probe else None
                    if not probe or probe["path"] != "/api/health" or str(port) != option(words, "--port"):
                        problems.append(f"{where}: its {kind} must ask /api/health on the port it listens on")
            if runs(words, "prefect", "worker", "start") or runs(words, "tiktok-pipeline", "worker"):
                resources = container.get("resources", {})
                for kind in ("cpu", "memory"):
                    request, limit = resources.get("requests", {}).get(kind), resources.get("limits", {}).get(kind)
                    if request is None or limit is None or quantity(request) > quantity(limit):
                        problems.append(f"{where}: needs a {kind} request and a limit at least as large (transcoding)")
    for name, secret in secrets.items():
        problems += [f"Secret {name}: {key} is not a {PLACEHOLDER} placeholder (this is a template)"
                     for key, value in secret.get("stringData", {}).items() if PLACEHOLDER not in str(value)]
        if secret.get("data"):
            problems.append(f"Secret {name}: data would hold real values; use stringData placeholders")
    for name, configmap in configmaps.items():
        problems += [f"ConfigMap {name}: {key} belongs in a Secret" for key in configmap.get("data", {}) if key in SECRET_SETTINGS]
        problems += [f"ConfigMap {name}: {key} holds a password: it belongs in a Secret" for key in configmap.get("data", {})
                     if key in URL_SCHEMES]
    # The ConfigMap's Prefect settings are compose's; the connection URLs differ (managed services) but not in kind.
    compose_env = next(env for words, env in compose_processes(compose).values() if runs(words, "prefect", "server", "services"))
    for name, (words, env) in k8s_processes(docs).items():
        if runs(words, "prefect", "server"):
            for key in PREFECT_SERVER_SETTINGS:
                if key not in URL_SCHEMES and env.get(key) != compose_env.get(key):
                    problems.append(f"{name}: {key}={env.get(key)!r}, compose.yaml has {compose_env.get(key)!r}")
    processes = k8s_processes(docs)
    problems += prefect_server_problems(processes)
    problems += pipeline_problems(processes, k8s_api_endpoints(docs))
    return problems


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    lines = re.sub(r"\\\n", " ", text).splitlines()
    base = next((line.split()[1] for line in lines if line.upper().startswith("FROM ")), "")
    match = re.fullmatch(r"python:(\d+\.\d+)-slim", base)
    if not match or not SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{match.group(1)}.0"):
        problems.append(f"FROM {base}: not a python:X.Y-slim that requires-python allows")
    runs_ = [line[4:] for line in lines if line.upper().startswith("RUN ")]
    if not any(re.search(r"apt-get install\b.*\bffmpeg\b", line) for line in runs_):
        problems.append("ffmpeg is not installed with apt-get (transcode/ runs ffmpeg and ffprobe)")
    pip = " ".join(line for line in runs_ if "pip install" in line)
    pins = dict(re.findall(r"\b(prefect-redis)==(\S+)", pip))
    if pins.get("prefect-redis") != "0.3.0":
        problems.append("prefect-redis==0.3.0 is not installed (the Prefect servers' Redis messaging)")
    for requirement in PYPROJECT["project"]["dependencies"]:
        if requirement.startswith("prefect-redis") and requirement.replace(" ", "") != f"prefect-redis=={pins.get('prefect-redis')}":
            problems.append(f"pyproject.toml pins {requirement}, the Dockerfile another prefect-redis")
    installed = re.search(r"pip install(?: --?\S+)* (\S+)", pip)
    target = installed.group(1).strip("'\"") if installed else ""
    if not target.startswith("."):
        problems.append("the checkout itself (`pip install .`) is not installed")
    extras = re.fullmatch(r"\.(?:\[(.*)\])?", target)
    for extra in (extras.group(1).split(",") if extras and extras.group(1) else []):
        if extra.strip() not in PYPROJECT["project"].get("optional-dependencies", {}):
            problems.append(f"extra {extra!r} is not in pyproject.toml")
    copied = {Path(source).name for line in lines if line.upper().startswith("COPY ") for source in line.split()[1:-1]}
    needed = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed |= {PYPROJECT["project"]["readme"], "pyproject.toml", "prefect.yaml"}
    problems += [f"{name} is not copied into the image" for name in sorted(needed - copied)]
    return problems


# --- the tests -----------------------------------------------------------------------------------


def test_every_file_parses_and_names_only_real_settings() -> None:
    load_compose()
    load_k8s()
    text = "\n".join(path.read_text(encoding="utf-8") for path in manifest_files())
    assert setting_name_problems(text) == []


def test_compose() -> None:
    assert compose_problems(load_compose()) == []


def test_kubernetes() -> None:
    assert k8s_problems(load_k8s(), load_compose()) == []


def test_dockerfile() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


# --- the probes: one break each, and the check above must name it -----------------------------------


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


COMPOSE_BREAKS = {
    "foreign image": (lambda c: _services(c)["listener"].pop("build") and _services(c)["listener"].update(image="python:3.11"),
                      "neither deploy/Dockerfile's"),
    "services differ": (lambda c: _services(c)["prefect-services"].update(
        environment={**_services(c)["prefect-services"]["environment"], "PREFECT_MESSAGING_CACHE": "prefect_redis.ordering"}),
        "differ in their multi-server settings"),
    "key missing": (lambda c: _services(c)["prefect-api"]["environment"].pop("PREFECT_SERVER_DOCKET_URL"),
                    "PREFECT_SERVER_DOCKET_URL not set"),
    "module typo": (lambda c: [_services(c)[s].update(environment={**_services(c)[s]["environment"],
                                                                   "PREFECT_MESSAGING_BROKER": "prefect_redis.messages"})
                               for s in ("prefect-api", "prefect-services", "prefect-migrate")], "not an importable module"),
    "services twice": (lambda c: _services(c)["prefect-api"]["command"].remove("--no-services"), "--no-services"),
    "unknown dependency": (lambda c: _services(c)["worker"]["depends_on"].update(prefect={"condition": "service_started"}),
                           "'prefect', which is not a service"),
    "health without check": (lambda c: _services(c)["redis"].pop("healthcheck"), "which has no healthcheck"),
    "other pool": (lambda c: _services(c)["worker"].update(command=["prefect", "worker", "start", "--pool", "default"]),
                   "polls 'default'"),
    "unknown command": (lambda c: _services(c)["listener"].update(command=["tiktok-pipeline", "listener"]), "is not a command"),
    "unknown option": (lambda c: _services(c)["setup"].update(command=["sh", "-c", "tiktok-pipeline setup --force && true"]),
                       "is not a command"),
    "api elsewhere": (lambda c: _services(c)["worker"].update(environment={**_services(c)["worker"]["environment"],
                                                                          "PREFECT_API_URL": "http://prefect:4200/api"}),
                      "PREFECT_API_URL"),
    "asyncpg ledger": (lambda c: _services(c)["listener"].update(environment={
        **_services(c)["listener"]["environment"], LEDGER_URL: "postgresql+asyncpg://u:p@postgres:5432/ledger"}), LEDGER_SCHEME),
    "shared database": (lambda c: _services(c)["setup"].update(environment={
        **_services(c)["setup"]["environment"], LEDGER_URL: "postgresql+psycopg://tiktok:p@postgres:5432/prefect"}), "of its own"),
    "missing database": (lambda c: _services(c)["postgres"]["environment"].update(POSTGRES_DB="postgres"), "does not create"),
    "secret inline": (lambda c: _services(c)["worker"].update(environment={**_services(c)["worker"]["environment"],
                                                                          f"{ENV_PREFIX}CLIENT_SECRET": "x"}), "belongs in .env"),
    "no env file": (lambda c: _services(c)["listener"].pop("env_file"), "no env_file"),
    "health elsewhere": (lambda c: _services(c)["prefect-api"]["healthcheck"].update(test=["CMD", "true"]), "/api/health"),
}


@pytest.mark.parametrize("case", COMPOSE_BREAKS)
def test_compose_probe(case: str) -> None:
    compose = copy.deepcopy(load_compose())
    # Anchored mappings are shared between services once parsed: give each service its own copy.
    for service in compose["services"].values():
        service["environment"] = dict(service.get("environment") or {})
        service["command"] = list(service["command"]) if isinstance(service.get("command"), list) else service.get("command")
    break_it, expected = COMPOSE_BREAKS[case]
    break_it(compose)
    problems = compose_problems(compose)
    assert any(expected in problem for problem in problems), problems


def _doc(docs: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    return next(d for found in docs.values() for d in found if d.get("kind") == kind and d["metadata"]["name"] == name)


def _container(docs: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    return _doc(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


K8S_BREAKS = {
    "no name": (lambda d: _doc(d, "Deployment", "listener")["metadata"].pop("name") and None, "without apiVersion"),
    "selector": (lambda d: _doc(d, "Deployment", "worker")["spec"]["selector"]["matchLabels"].update(
        {"app.kubernetes.io/name": "workers"}), "selector does not match"),
    "service selects nothing": (lambda d: _doc(d, "Service", "prefect-api")["spec"]["selector"].update(
        {"app.kubernetes.io/name": "api"}), "selects no Deployment"),
    "service port": (lambda d: _doc(d, "Service", "prefect-api")["spec"]["ports"][0].update(targetPort="web"),
                     "is no declared container port"),
    "configmap differs": (lambda d: _doc(d, "ConfigMap", "prefect-server")["data"].update(
        PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect.server.concurrency.lease_storage.memory"), "compose.yaml has"),
    "server without secret": (lambda d: _container(d, "Deployment", "prefect-services")["envFrom"].pop(), "not set"),
    "unknown configmap": (lambda d: _container(d, "Deployment", "listener")["envFrom"][0]["configMapRef"].update(name="pipeline"),
                          "is not defined"),
    "unknown claim": (lambda d: _doc(d, "Deployment", "worker")["spec"]["template"]["spec"]["volumes"][0]
                      ["persistentVolumeClaim"].update(claimName="data"), "not defined"),
    "other image": (lambda d: _container(d, "Job", "prefect-migrate").update(image="prefecthq/prefect:3-latest"), "is not the one"),
    "probe path": (lambda d: _container(d, "Deployment", "prefect-api")["livenessProbe"]["httpGet"].update(path="/health"),
                   "/api/health"),
    "probe port": (lambda d: _container(d, "Deployment", "prefect-api")["readinessProbe"]["httpGet"].update(port=8080),
                   "does not declare"),
    "worker unsized": (lambda d: _container(d, "Deployment", "worker")["resources"].pop("limits"), "memory request"),
    "worker pool": (lambda d: _container(d, "Deployment", "worker").update(command=["prefect", "worker", "start", "-p", "x"]),
                    "polls None"),
    "setup command": (lambda d: _container(d, "Job", "tiktok-pipeline-setup").update(
        command=["sh", "-c", "tiktok-pipeline bootstrap"]), "is not a command"),
    "api url": (lambda d: _doc(d, "ConfigMap", "tiktok-pipeline")["data"].update(PREFECT_API_URL="http://prefect-api:4300/api"),
                "PREFECT_API_URL"),
    "real secret": (lambda d: _doc(d, "Secret", "tiktok-pipeline")["stringData"].update(TIKTOK_PIPELINE_CLIENT_KEY="aw123"),
                    "placeholder"),
    "url in configmap": (lambda d: _doc(d, "ConfigMap", "prefect-server")["data"].update(
        PREFECT_SERVER_DOCKET_URL="redis://r:6379/1"), "holds a password"),
    "secret in configmap": (lambda d: _doc(d, "ConfigMap", "tiktok-pipeline")["data"].update(
        {f"{ENV_PREFIX}ENCRYPTION_KEY": "k"}), "belongs in a Secret"),
    "ledger driver": (lambda d: _doc(d, "Secret", "tiktok-pipeline")["stringData"].update(
        {LEDGER_URL: "postgresql://CHANGE-ME@h/ledger"}), LEDGER_SCHEME),
    "unlisted file": (lambda d: d["kustomization.yaml"][0]["resources"].remove("listener.yaml"), "not listed"),
    "listed, missing": (lambda d: d["kustomization.yaml"][0]["resources"].append("ingress.yaml"), "not in deploy/k8s"),
}


@pytest.mark.parametrize("case", K8S_BREAKS)
def test_kubernetes_probe(case: str) -> None:
    docs = copy.deepcopy(load_k8s())
    break_it, expected = K8S_BREAKS[case]
    break_it(docs)
    problems = k8s_problems(docs, load_compose())
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("FROM python:3.11-slim", "FROM python:3.12-slim", "requires-python"),
    ("install -y --no-install-recommends ffmpeg", "install -y --no-install-recommends curl", "ffmpeg"),
    ("prefect-redis==0.3.0", "prefect-redis", "prefect-redis==0.3.0"),
    ("pip install --no-cache-dir .", "pip install --no-cache-dir .[postgres]", "extra 'postgres'"),
    ("COPY ledger ./ledger\n", "", "ledger is not copied"),
])
def test_dockerfile_probe(old: str, new: str, expected: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert old in text
    assert any(expected in problem for problem in dockerfile_problems(text.replace(old, new)))


def test_setting_names_probe() -> None:
    assert setting_name_problems("TIKTOK_PIPELINE_S3_QUEUE PREFECT_REDIS_URL PREFECT_API_URL") == [
        "PREFECT_REDIS_URL is not a setting", "TIKTOK_PIPELINE_S3_QUEUE is not a setting"]
