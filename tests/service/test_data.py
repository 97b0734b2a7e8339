"""The real-data layer: resolution order, the row index, digests, the CIFAR-10 download and user data."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from zcscore.data import (
    XAUTODL_CIFAR10_MEAN,
    XAUTODL_CIFAR10_STD,
    ArrayData,
    as_array_data,
    load_cifar10_subset,
    load_real_data,
    normalise_uint8_hwc,
)
from zcscore.data_source import (
    DataSource,
    DataUnavailable,
    fetch_cifar10,
    load_subset_arrays,
    reference_digest,
    require_data_source,
    resolve_data_source,
    source_from_path,
)
from zcscore.settings import Settings

ROWS_PER_BATCH = 1000  # the subset uses rows <= 675 of each batch; real batches have 10,000


def _shared_dir() -> Path:
    env = os.environ.get("ZCSCORE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    """The shared data dir holding ``cifar10_subset.npz`` (skip if absent)."""
    path = _shared_dir()
    if not (path / "cifar10_subset.npz").is_file():
        pytest.skip(f"cifar10_subset.npz not found in {path}")
    return path


@pytest.fixture(scope="module")
def npz(shared_dir: Path) -> dict[str, np.ndarray]:
    """The shared subset's arrays."""
    with np.load(shared_dir / "cifar10_subset.npz") as z:
        return {k: z[k] for k in ("train_x", "train_y", "train_src_batch", "train_src_row")}


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _batch_pickles(npz: dict[str, np.ndarray], protocol: int = 2) -> dict[str, bytes]:
    """CIFAR-10-style batch pickles with the subset's images put back at their (batch, row); other rows zero.

    ``protocol`` 0 means protocol 2 with numpy's pre-2.0 module name ``numpy.core.multiarray``.
    """
    out = {}
    for b in range(1, 6):
        data = np.zeros((ROWS_PER_BATCH, 3072), dtype=np.uint8)
        labels = [0] * ROWS_PER_BATCH
        for i in np.flatnonzero(npz["train_src_batch"] == b):
            r = int(npz["train_src_row"][i])
            data[r] = npz["train_x"][i].transpose(2, 0, 1).reshape(-1)  # HWC -> CHW-flat
            labels[r] = int(npz["train_y"][i])
        doc = {b"batch_label": f"training batch {b} of 5".encode(), b"labels": labels, b"data": data}
        blob = pickle.dumps(doc, protocol=max(protocol, 2))
        if protocol == 0:  # as the original (numpy 1.x era) files name it
            assert b"numpy._core.multiarray\n_reconstruct" in blob
            blob = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        out[f"data_batch_{b}"] = blob
    return out


def _write_batches(folder: Path, pickles: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in pickles.items():
        (folder / name).write_bytes(blob)
    return folder


def _settings(data_dir: Path | None, cache: Path) -> Settings:
    return Settings(data_dir=data_dir, cache_dir=cache)


# ---------------------------------------------------------------------------------------------- digests


def test_npz_source_digest_is_content_digest(shared_dir: Path, npz: dict[str, np.ndarray], tmp_path: Path) -> None:
    src = resolve_data_source(_settings(shared_dir, tmp_path / "cache"))
    assert src is not None
    assert src.kind == "directory"
    assert src.path == shared_dir / "cifar10_subset.npz"
    assert src.digest == _digest(npz["train_x"], npz["train_y"]) == reference_digest()
    assert src.source_id == f"cifar10_subset:{src.digest[:12]}"
    assert src.is_reference
    assert str(src.path) in src.describe() and "\n" not in src.describe()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_batches_folder_rebuilds_the_shared_subset(npz: dict[str, np.ndarray], tmp_path: Path, protocol: int) -> None:
    folder = _write_batches(tmp_path / "data" / "cifar-10-batches-py", _batch_pickles(npz, protocol))
    src = resolve_data_source(_settings(tmp_path / "data", tmp_path / "cache"))
    assert src == DataSource("directory", folder, _digest(npz["train_x"], npz["train_y"]))
    images, labels = load_subset_arrays(src)
    assert images.dtype == np.uint8 and images.shape == (2560, 32, 32, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, npz["train_x"])
    np.testing.assert_array_equal(labels, npz["train_y"])
    images[0] = 0  # callers get their own copy
    np.testing.assert_array_equal(load_subset_arrays(src)[0], npz["train_x"])


def test_changed_files_give_a_new_digest(npz: dict[str, np.ndarray], tmp_path: Path) -> None:
    pickles = _batch_pickles(npz)
    folder = _write_batches(tmp_path / "cifar-10-batches-py", pickles)
    before = source_from_path(folder)
    doc = pickle.loads(pickles["data_batch_1"], encoding="bytes")
    doc[b"data"][0, 0] ^= 1
    (folder / "data_batch_1").write_bytes(pickle.dumps(doc, protocol=2))
    os.utime(folder / "data_batch_1", ns=(1, 1))  # a different mtime even on coarse clocks
    after = source_from_path(folder)
    assert after.digest != before.digest
    assert not after.is_reference
    with pytest.raises(DataUnavailable, match="changed since it was resolved"):
        load_subset_arrays(before)


def test_batch_pickles_cannot_run_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataUnavailable, match="refusing to load"):
        source_from_path(folder)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------------- resolution


def test_resolution_order(shared_dir: Path, npz: dict[str, np.ndarray], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_data_source(_settings(None, cache)) is None
    assert resolve_data_source(_settings(empty, cache)) is None

    cache_folder = _write_batches(cache / "cifar-10-batches-py", _batch_pickles(npz))
    got = resolve_data_source(_settings(None, cache))
    assert got is not None and (got.kind, got.path) == ("cache", cache_folder)
    got = resolve_data_source(_settings(empty, cache))  # data_dir without data falls through to the cache
    assert got is not None and got.kind == "cache"

    got = resolve_data_source(_settings(shared_dir, cache))  # data_dir beats the cache dir
    assert got is not None and (got.kind, got.path) == ("directory", shared_dir / "cifar10_subset.npz")
    assert got.digest == resolve_data_source(_settings(None, cache)).digest  # type: ignore[union-attr]


def test_require_without_download_raises(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "nothing", tmp_path / "cache")
    with pytest.raises(DataUnavailable) as info:
        require_data_source(settings, download=False)
    msg = str(info.value)
    assert "ZCSCORE_DATA_DIR" in msg and "zcscore data fetch" in msg
    assert str(tmp_path / "nothing" / "cifar10_subset.npz") in msg
    assert str(tmp_path / "cache" / "cifar10_subset.npz") in msg
    no_download = Settings(data_dir=tmp_path / "nothing", cache_dir=tmp_path / "cache", data_download=False)
    with pytest.raises(DataUnavailable):
        require_data_source(no_download)
    assert not (tmp_path / "cache").exists()  # resolving never creates or downloads anything


def test_require_resolves_without_download(shared_dir: Path, tmp_path: Path) -> None:
    src = require_data_source(_settings(shared_dir, tmp_path / "cache"), download=True)
    assert src.kind == "directory"
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------------------------- download


class _Server:
    """A real HTTP server on 127.0.0.1 serving one directory, counting GET requests."""

    def __init__(self, root: Path) -> None:
        hits: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                hits.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.hits = hits
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture()
def archive(npz: dict[str, np.ndarray], tmp_path: Path) -> tuple[Path, str]:
    """A CIFAR-10-style ``cifar-10-python.tar.gz`` (with hostile extra members) and its md5."""
    root = tmp_path / "www"
    root.mkdir()
    path = root / "cifar-10-python.tar.gz"
    members = {f"cifar-10-batches-py/{k}": v for k, v in _batch_pickles(npz).items()}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    members["../escape.txt"] = b"outside"
    members["cifar-10-batches-py/../../escape2.txt"] = b"outside"
    members["/tmp/zcscore_test_absolute_escape.txt"] = b"outside"
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_6")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    return path, hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(archive: tuple[Path, str]) -> Iterator[_Server]:
    """The archive's folder served over HTTP."""
    srv = _Server(archive[0].parent)
    yield srv
    srv.close()


def test_fetch_downloads_once_and_builds_the_subset(
    archive: tuple[Path, str], server: _Server, npz: dict[str, np.ndarray], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    settings = _settings(None, cache)
    url, md5 = server.url(archive[0].name), archive[1]

    src = fetch_cifar10(settings, url=url, md5=md5)
    assert (src.kind, src.path) == ("cache", cache / "cifar10_subset.npz")
    assert src.digest == _digest(npz["train_x"], npz["train_y"])
    assert server.hits == ["/cifar-10-python.tar.gz"]
    with np.load(src.path) as built:
        np.testing.assert_array_equal(built["train_x"], npz["train_x"])
        np.testing.assert_array_equal(built["train_y"], npz["train_y"])
    assert sorted(p.name for p in (cache / "cifar-10-batches-py").iterdir()) == [f"data_batch_{b}" for b in range(1, 6)]
    assert not list(cache.glob("*.part")) and not list((cache / "cifar-10-batches-py").glob("*.part"))
    for escaped in (
        tmp_path / "escape.txt",
        cache.parent / "escape2.txt",
        Path("/tmp/zcscore_test_absolute_escape.txt"),
    ):
        assert not escaped.exists()

    again = fetch_cifar10(settings, url=url, md5=md5)  # the verified archive is reused
    assert again == src
    assert len(server.hits) == 1

    resolved = require_data_source(settings)  # now resolves from the cache, without fetching
    assert resolved == src
    assert len(server.hits) == 1


def test_require_downloads_when_nothing_resolves(
    archive: tuple[Path, str],
    server: _Server,
    npz: dict[str, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zcscore.data_source as ds

    # point the default URL at the local server (the real one is never contacted by the tests)
    monkeypatch.setattr(ds.fetch_cifar10, "__defaults__", (None, server.url(archive[0].name), archive[1]))
    settings = Settings(data_dir=tmp_path / "nothing", cache_dir=tmp_path / "cache", data_download=True)
    src = require_data_source(settings)
    assert src.kind == "cache" and src.digest == reference_digest()
    assert len(server.hits) == 1


def test_fetch_rejects_a_bad_checksum(archive: tuple[Path, str], server: _Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataUnavailable, match="checksum mismatch"):
        fetch_cifar10(_settings(None, cache), url=server.url(archive[0].name), md5="0" * 32)
    assert list(cache.iterdir()) == []  # neither the archive nor a partial file is kept
    assert resolve_data_source(_settings(None, cache)) is None


def test_fetch_network_error_is_data_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataUnavailable, match="could not download") as info:
        fetch_cifar10(_settings(None, tmp_path / "cache"), url=f"http://127.0.0.1:{port}/x.tar.gz", md5="0" * 32)
    assert "ZCSCORE_DATA_DIR" in str(info.value)


def test_fetch_http_error_is_data_unavailable(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable, match="could not download"):
        fetch_cifar10(_settings(None, tmp_path / "cache"), url=server.url("missing.tar.gz"), md5="0" * 32)


# ---------------------------------------------------------------------------------------------- tensors


def test_load_real_data_matches_the_old_normalisation(
    shared_dir: Path, npz: dict[str, np.ndarray], tmp_path: Path
) -> None:
    src = resolve_data_source(_settings(shared_dir, tmp_path / "cache"))
    assert src is not None
    data = load_real_data(src)
    expected = normalise_uint8_hwc(npz["train_x"], XAUTODL_CIFAR10_MEAN, XAUTODL_CIFAR10_STD)
    assert data.images.dtype == torch.float32 and data.images.shape == (2560, 3, 32, 32)
    assert torch.equal(data.images, expected)
    assert torch.equal(data.labels, torch.from_numpy(npz["train_y"].astype(np.int64)))
    assert (data.source_id, data.digest, data.content_digest) == (src.source_id, src.digest, src.digest)
    assert load_real_data(src) is data  # cached per digest
    assert load_cifar10_subset(str(shared_dir / "cifar10_subset.npz")) is data
    assert load_cifar10_subset(shared_dir) is data
    x, y = data.batch(1)
    assert torch.equal(x, expected[64:128]) and len(y) == 64


def test_load_real_data_same_digest_from_batches_folder(
    shared_dir: Path, npz: dict[str, np.ndarray], tmp_path: Path
) -> None:
    folder = _write_batches(tmp_path / "cifar-10-batches-py", _batch_pickles(npz))
    a = load_real_data(source_from_path(folder))
    b = load_real_data(source_from_path(shared_dir / "cifar10_subset.npz"))
    assert a.source_id == b.source_id
    assert torch.equal(a.images, b.images)


def _tensor_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256(images.to(torch.float32).contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def test_as_array_data_uint8_tuple(npz: dict[str, np.ndarray]) -> None:
    data = as_array_data((npz["train_x"][:100], npz["train_y"][:100]))
    expected = normalise_uint8_hwc(npz["train_x"][:100], XAUTODL_CIFAR10_MEAN, XAUTODL_CIFAR10_STD)
    assert torch.equal(data.images, expected)
    assert data.labels.dtype == torch.int64
    assert data.digest == _tensor_digest(expected, torch.from_numpy(npz["train_y"][:100]))
    assert data.source_id == f"user:{data.digest[:12]}"
    as_tensor = as_array_data([torch.from_numpy(npz["train_x"][:100]), torch.from_numpy(npz["train_y"][:100])])
    assert as_tensor.digest == data.digest


def test_as_array_data_float_tuple_and_dataset() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(10, 3, 8, 8, generator=g)
    labels = torch.arange(10) % 3
    data = as_array_data((images, labels))
    assert torch.equal(data.images, images)  # floats are taken as already normalised
    assert data.digest == _tensor_digest(images, labels)

    from_ds = as_array_data(TensorDataset(images, labels))
    assert torch.equal(from_ds.images, images) and torch.equal(from_ds.labels, labels)
    assert from_ds.digest == data.digest and from_ds.source_id == data.source_id

    big = TensorDataset(torch.zeros(3000, 1, 2, 2), torch.zeros(3000, dtype=torch.int64))
    assert len(as_array_data(big).images) == 2560
    assert as_array_data(data) is data

    with pytest.raises(ValueError, match="N,C,H,W"):
        as_array_data((torch.randn(3, 8, 8), torch.zeros(3)))
    with pytest.raises(ValueError, match="HWC"):
        as_array_data((np.zeros((2, 3, 8, 8), np.uint8), [0, 1]))
    with pytest.raises(ValueError, match="labels"):
        as_array_data((images, labels[:5]))
    with pytest.raises(TypeError):
        as_array_data("cifar10")


def test_array_data_positional_construction() -> None:
    images, labels = torch.ones(2, 1, 2, 2), torch.tensor([0, 1])
    data = ArrayData(images, labels, "hand")
    assert data.digest == ""
    assert data.content_digest == _tensor_digest(images, labels)
    assert data.rows(0, 1)[1].tolist() == [0]


# ---------------------------------------------------------------------------------------------- command line


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZCSCORE_")}
    env["ZCSCORE_DATA_DOWNLOAD"] = "false"  # only `data fetch` (given a local --url) downloads
    env.update(extra)
    return env


def test_data_modules_do_not_import_torch() -> None:
    code = "import sys, zcscore.data_source, zcscore.commands.data; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def test_data_command_module(shared_dir: Path, tmp_path: Path) -> None:
    env = _env(ZCSCORE_DATA_DIR=str(shared_dir), ZCSCORE_CACHE_DIR=str(tmp_path / "cache"))
    ok = subprocess.run(
        [sys.executable, "-m", "zcscore.commands.data", "show"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert reference_digest() in ok.stdout and str(shared_dir / "cifar10_subset.npz") in ok.stdout
    assert str(tmp_path / "cache") in ok.stdout

    env["ZCSCORE_DATA_DIR"] = str(tmp_path / "nothing")
    bad = subprocess.run([sys.executable, "-m", "zcscore.commands.data"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "ZCSCORE_DATA_DIR" in bad.stdout and "zcscore data fetch" in bad.stdout


def test_data_fetch_command(archive: tuple[Path, str], server: _Server, tmp_path: Path) -> None:
    env = _env(ZCSCORE_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "zcscore.commands.data", "fetch", "--url", server.url(archive[0].name)]
    bad = subprocess.run([*cmd, "--md5", "0" * 32], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "checksum mismatch" in bad.stderr
    ok = subprocess.run([*cmd, "--md5", archive[1]], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert reference_digest() in ok.stdout and "cache" in ok.stdout


def test_zcscore_data_cli(shared_dir: Path, tmp_path: Path) -> None:
    env = _env(ZCSCORE_DATA_DIR=str(shared_dir), ZCSCORE_CACHE_DIR=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-m", "zcscore.cli", "data"], env=env, capture_output=True, text=True)
    if "invalid choice: 'data'" in res.stderr:
        pytest.skip("`zcscore data` is not registered in zcscore.cli yet")
    assert res.returncode == 0, res.stderr
    assert reference_digest() in res.stdout
