"""docker-compose.yml and the Dockerfile are structurally right (Docker cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_and_dependencies(compose: dict) -> None:
    svc = compose["services"]
    assert {"postgres", "redis", "api", "ray-head", "ray-worker", "ray-worker-cpu"} <= set(svc)
    for name in ("postgres", "redis"):
        assert "healthcheck" in svc[name]
    for name in ("api", "ray-head"):
        deps = svc[name]["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"
    for name in ("ray-worker", "ray-worker-cpu"):
        assert svc[name]["depends_on"]["ray-head"]["condition"] == "service_healthy"
        assert "--address=ray-head:6380" in svc[name]["command"]


def test_commands_use_the_cli(compose: dict) -> None:
    svc = compose["services"]
    assert svc["api"]["command"][:2] == ["zcscore", "api"]
    head = " ".join(svc["ray-head"]["command"])
    assert "ray start --head --port=6380" in head and "zcscore dispatcher" in head
    assert svc["ray-head"]["environment"]["ZCSCORE_RAY_ADDRESS"] == "127.0.0.1:6380"


def test_settings_point_at_the_compose_services(compose: dict) -> None:
    from zcscore.settings import Settings

    env = compose["services"]["api"]["environment"]
    assert "@postgres:5432/" in env["ZCSCORE_DATABASE_URL"]
    assert env["ZCSCORE_REDIS_URL"].startswith("redis://redis:6379")
    fields = set(Settings.model_fields)
    for key in env:
        if key.startswith("ZCSCORE_"):
            assert key.removeprefix("ZCSCORE_").lower() in fields, key


def test_gpu_workers_reserve_gpus_and_cpu_profile_needs_none(compose: dict) -> None:
    svc = compose["services"]
    gpu = svc["ray-worker"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    cpu = svc["ray-worker-cpu"]
    assert cpu["profiles"] == ["cpu"] and "resources" not in cpu.get("deploy", {})
    core = [n for n, s in svc.items() if "profiles" not in s]
    assert all("devices" not in str(svc[n].get("deploy", "")) for n in core)  # runs without GPUs


def test_images_build_from_the_dockerfile(compose: dict) -> None:
    for name in ("api", "ray-head", "ray-worker", "ray-worker-cpu"):
        build = compose["services"][name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert 'pip install ".[service' in text and "TORCH_INDEX" in text
    for package in ("service", "api", "storage", "workers"):
        assert f"COPY {package} ./{package}" in text
