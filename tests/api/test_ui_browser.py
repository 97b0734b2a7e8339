"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against ``zcscore serve``.

Auth is on (keys for alice, bob and an admin): alice's page shows her job reaching 100 % and never bob's; the
admin's shows both, the workers, a leaderboard and the Kendall-tau scatter. Set ``ZCSCORE_DASHBOARD_PNG`` to
keep a screenshot of the admin's view there.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workers"))
from kit import REDIS_URL, free_port, start, stop, wait_http, wait_job, zcscore

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROXIES = ["params", "flops"]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )


@dataclass
class Lab:
    url: str
    keys: dict[str, str]

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {self.keys[who]}"})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`zcscore serve` (one actor, shared Redis, SQLite) whose database holds alice's, bob's and an admin's keys."""
    from zcscore.api.auth import hash_key, new_key
    from zcscore.storage.store import open_store

    tmp = tmp_path_factory.mktemp("ui")
    db = f"sqlite:///{tmp / 'ui.db'}"
    store = open_store(db)
    keys = {}
    for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin")):
        keys[name] = new_key()
        store.create_key(name, hash_key(keys[name]), keys[name][:10], role)
    store.engine.dispose()
    port = free_port()
    env = {
        "ZCSCORE_HOME": str(tmp / "home"),
        "ZCSCORE_DATABASE_URL": db,
        "ZCSCORE_REDIS_URL": REDIS_URL,
        "ZCSCORE_REDIS_PREFIX": f"zcstest-{uuid.uuid4().hex[:10]}",
        "ZCSCORE_THREADS": "1",
        "ZCSCORE_BATCH_SIZE": "8",
    }
    proc = start(zcscore("serve", "--port", str(port), "--ray-cpus", "1"), env, tmp / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        yield Lab(f"http://127.0.0.1:{port}", keys)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def submit(lab: Lab, who: str, archs: list[str]) -> str:
    with lab.client(who) as c:
        resp = c.post("/v1/jobs", json={"space": "nb201", "archs": archs, "proxies": PROXIES})
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])


def use_key(page, key: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")


def test_the_dashboard_follows_jobs_to_100_percent_per_user(lab: Lab, browser, data_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from zcscore.bench.truth import all_archs

    expect = playwright_api.expect
    archs = all_archs(data_dir)
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    errors: list[str] = []  # script errors and CSP violations; a refused key's 401 is expected
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    page.goto(f"{lab.url}/ui")
    expect(page.locator("#banner")).to_contain_text("enter your API key")  # auth is on and the page has no key
    use_key(page, lab.keys["alice"])
    expect(page.locator("#conn-text")).to_contain_text("live", timeout=10_000)

    alice = submit(lab, "alice", archs[:40])
    bob = submit(lab, "bob", archs[40:70])
    row = page.locator(f'tr[data-job-id="{alice}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator(".owner")).to_have_text("alice")
    expect(row.locator(".pct")).to_have_text("100%", timeout=45_000)
    expect(row).to_have_attribute("data-status", "done")
    expect(row.locator(".done-total")).to_have_text("80 / 80")
    assert page.locator(f'tr[data-job-id="{bob}"]').count() == 0  # another user's job stays hidden

    with lab.client("root") as c:
        wait_job(c, bob, timeout=45)
    use_key(page, lab.keys["root"])  # the admin sees every job
    expect(page.locator(f'tr[data-job-id="{bob}"] .pct')).to_have_text("100%", timeout=10_000)
    expect(page.locator(f'tr[data-job-id="{alice}"] .pct')).to_have_text("100%")
    expect(page.locator("#workers li .wname").first).to_be_visible()
    expect(page.locator("#top-body tr:not(.empty)")).to_have_count(10, timeout=10_000)
    expect(page.locator("#scatter circle.pt")).to_have_count(70, timeout=15_000)
    assert page.locator("#scatter-tau").inner_text() not in ("", "–")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("ZCSCORE_DASHBOARD_PNG"):
        shutil.copyfile(shot, os.environ["ZCSCORE_DASHBOARD_PNG"])
    page.close()
    assert errors == []
