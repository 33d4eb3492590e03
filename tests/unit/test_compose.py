"""The compose lane agrees with the code: docker-compose.ci.yml (proxy name, ports,
settings, pinned images, healthchecks), the Dockerfile, and the scripts that run it."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

import yaml

from app.settings import Settings
from chaos.infra.stack import CHAOS_SERVICE_SETTINGS, PROXY_NAME

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.ci.yml").read_text())
    return data


def services() -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"]
    return svc


def toxiproxy_config() -> list[dict[str, Any]]:
    mount = next(v for v in services()["toxiproxy"]["volumes"] if v.endswith("toxiproxy.json:ro"))
    host_path = mount.split(":")[0]
    data: list[dict[str, Any]] = json.loads((ROOT / host_path).read_text())
    return data


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        if "image" in svc:
            tag = svc["image"].rpartition(":")[2]
            assert tag != "latest", name
            assert any(c.isdigit() for c in tag), name
    assert services()["postgres"]["image"].startswith("postgres:15.")
    assert services()["toxiproxy"]["image"].startswith("ghcr.io/shopify/toxiproxy:2.12")


def test_toxiproxy_declares_the_postgres_proxy() -> None:
    (proxy,) = toxiproxy_config()
    assert proxy["name"] == PROXY_NAME
    assert proxy["upstream"] == "postgres:5432"
    assert proxy["enabled"] is True


def test_service_reaches_the_database_only_through_toxiproxy() -> None:
    env = services()["app"]["environment"]
    (proxy,) = toxiproxy_config()
    listen_port = proxy["listen"].rpartition(":")[2]
    assert env["DB_HOST"] == "toxiproxy"
    assert env["DB_PORT"] == listen_port
    assert "DATABASE_URL" not in env
    assert services()["app"]["depends_on"]["toxiproxy"]["condition"] == "service_healthy"


def test_environment_names_are_settings_the_service_reads() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for key in services()["app"]["environment"]:
        assert key in fields, key


def test_limits_match_the_local_chaos_stack() -> None:
    env = services()["app"]["environment"]
    for key, value in CHAOS_SERVICE_SETTINGS.items():
        assert env[key] == value, key


def test_ports_published_for_an_external_stack_run() -> None:
    published = {
        name: [p.rsplit(":", 1)[1] for p in svc.get("ports", [])]
        for name, svc in services().items()
    }
    assert published["app"] == [services()["app"]["environment"]["SERVER_PORT"]]
    assert "8474" in published["toxiproxy"]
    assert "5432" in published["postgres-net"]


def test_every_service_has_a_healthcheck() -> None:
    for name, svc in services().items():
        if name == "postgres-net":
            continue  # holds a network namespace, runs nothing
        assert "healthcheck" in svc or (
            name == "app" and "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()
        ), name


def test_schema_is_mounted_for_postgres_init() -> None:
    volumes = services()["postgres"]["volumes"]
    assert any(v.startswith("./app/schema.sql:/docker-entrypoint-initdb.d/") for v in volumes)


PORT = re.compile(r"^127\.0\.0\.1:\$\{(COUPON_[A-Z_]+_PORT):-(\d+)\}:(\d+)$")


def script(name: str) -> str:
    return (ROOT / "scripts" / name).read_text()


def published_ports() -> dict[str, tuple[str, int, int]]:
    """{env variable: (service, default host port, container port)} of every published port."""
    found: dict[str, tuple[str, int, int]] = {}
    for name, svc in services().items():
        for entry in svc.get("ports", []):
            match = PORT.match(entry)
            assert match, f"{name}: {entry!r} is not 127.0.0.1:${{COUPON_..._PORT:-N}}:N"
            found[match[1]] = (name, int(match[2]), int(match[3]))
    return found


def test_ports_are_on_loopback_only_and_movable_by_environment() -> None:
    ports = published_ports()
    assert set(ports) == {
        "COUPON_SERVICE_PORT",
        "COUPON_POSTGRES_PORT",
        "COUPON_TOXIPROXY_PORT",
        "COUPON_PROXY_PORT",
    }
    # Defaults as before the variables existed.
    assert {k: v[1] for k, v in ports.items()} == {
        "COUPON_SERVICE_PORT": 3000,
        "COUPON_POSTGRES_PORT": 5432,
        "COUPON_TOXIPROXY_PORT": 8474,
        "COUPON_PROXY_PORT": 5433,
    }
    (proxy,) = toxiproxy_config()
    assert ports["COUPON_PROXY_PORT"][2] == int(proxy["listen"].rpartition(":")[2])


def test_the_lane_script_uses_the_compose_file_defaults() -> None:
    text = script("chaos-compose.sh")
    for var, (_service, default, _port) in published_ports().items():
        assert f"export {var}=${{{var}:-{default}}}" in text, var
    assert f"COMPOSE_PROJECT={compose()['name']}" in text


def test_the_cli_compose_endpoints_are_the_defaults() -> None:
    from chaos.cli import compose_endpoints

    project, COMPOSE_ENDPOINTS = compose_endpoints(ROOT / "docker-compose.ci.yml")
    assert project == compose()["name"]
    db = compose()["services"]["postgres"]["environment"]["POSTGRES_DB"]
    assert COMPOSE_ENDPOINTS.database_url.split("?")[0].endswith(f"/{db}")
    ports = {k: v[1] for k, v in published_ports().items()}
    assert COMPOSE_ENDPOINTS.service_url.endswith(f":{ports['COUPON_SERVICE_PORT']}")
    assert COMPOSE_ENDPOINTS.toxiproxy_url.endswith(f":{ports['COUPON_TOXIPROXY_PORT']}")
    assert f":{ports['COUPON_POSTGRES_PORT']}/" in COMPOSE_ENDPOINTS.database_url
    assert f":{ports['COUPON_PROXY_PORT']}/" in COMPOSE_ENDPOINTS.proxied_database_url


def test_postgres_health_is_checked_over_tcp() -> None:
    # The image's init-time server listens on its Unix socket only; Toxiproxy needs TCP.
    test = services()["postgres"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert "pg_isready" in test
    assert test[test.index("-h") + 1] in {"127.0.0.1", "localhost", "postgres"}


def test_the_service_image_builds_without_network() -> None:
    build = services()["app"]["build"]
    assert build["context"] == "."
    assert build["network"] == "none"


def test_dockerfile_installs_dependencies_offline_before_the_source() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    wheels = re.search(r"^OUT=(\S+)$", script("wheels.sh"), re.M)
    assert wheels
    copy_wheels = next(i for i, ln in enumerate(lines) if ln.startswith(f"COPY {wheels[1]}/"))
    install = next(i for i, ln in enumerate(lines) if "pip install" in ln)
    copy_source = next(i for i, ln in enumerate(lines) if ln.startswith("COPY app"))
    assert copy_wheels < install < copy_source
    assert "--no-index" in lines[install]
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert f"!{wheels[1]}/" in ignore
    assert "!app/" in ignore


def named_images() -> set[str]:
    names = {svc["image"] for svc in services().values() if "image" in svc}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.upper().startswith("FROM "):
            names.add(line.split()[1])
    return names


def test_every_named_image_has_a_local_recipe() -> None:
    patterns = re.findall(r"^    ([^\s()]+)\) build_", script("images.sh"), re.M)
    assert patterns
    for image in named_images():
        assert any(fnmatch.fnmatch(image, p) for p in patterns), image


def test_the_toxiproxy_image_is_the_version_dev_builds() -> None:
    tag = services()["toxiproxy"]["image"].rpartition(":")[2]
    assert f"TOXIPROXY_VERSION=v{tag}\n" in (ROOT / "dev").read_text()


def test_no_top_level_folder_shadows_an_installed_module() -> None:
    # A folder named like an installed module (it was `docker/`) is a namespace package
    # to mypy and hides the real one (the Docker SDK: "Module has no attribute from_env").
    installed = importlib.metadata.packages_distributions()
    for path in ROOT.iterdir():
        if path.is_dir() and not (path / "__init__.py").exists():
            assert path.name not in installed, path.name


def test_the_database_address_outlives_the_database_container() -> None:
    # Database faults stop the `postgres` container (chaos.stack.ExternalStack); the
    # name Toxiproxy dials and the published port belong to a container they never touch.
    (proxy,) = toxiproxy_config()
    host = proxy["upstream"].rpartition(":")[0]
    holder = services()["postgres-net"]
    assert services()["postgres"]["network_mode"] == "service:postgres-net"
    assert "ports" not in services()["postgres"]
    assert host in holder["networks"]["default"]["aliases"]
    assert holder["image"] == services()["postgres"]["image"]
