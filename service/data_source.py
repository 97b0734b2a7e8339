"""Where the real CIFAR-10 images for data-dependent proxies come from (no torch here, numpy only).

Resolution order (:func:`resolve_data_source`, never downloads):

1. ``settings.data_dir``: ``cifar10_subset.npz`` in it, else a torchvision-style ``cifar-10-batches-py/``
   folder in it (or ``data_dir`` itself being such a folder);
2. the cache dir (``settings.cache_dir``, default ``platformdirs.user_cache_dir("zcscore")``): the
   ``cifar10_subset.npz`` built by :func:`fetch_cifar10`, else ``cifar-10-batches-py/`` there.

:func:`require_data_source` adds a one-time download of the official CIFAR-10 archive (the URL and md5 that
torchvision uses) when nothing resolves and ``settings.data_download`` allows it.

Whatever the file, the images are the fixed 2,560-row train subset of the shared ``cifar10_subset.npz``,
and :attr:`DataSource.digest` is the sha256 of that content (uint8 HWC image bytes, then int64 label bytes),
so the same images give the same digest whatever file they were read from.

The row index ``resources/cifar10_subset_rows.json`` is a fact about the shared subset, generated once from
the shared npz: ``rows[i] = [int(train_src_batch[i]), int(train_src_row[i])]`` for i in 0..2559 (CIFAR-10
``data_batch_{batch}``, 0-based row), written with ``json.dumps(..., separators=(",", ":"))``, plus ``n`` and
``sha256`` (the content digest of the npz's ``train_x``/``train_y`` as defined above). Rebuilding those rows
from any official CIFAR-10 copy gives exactly the npz's images, hence the same digest.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import importlib
import importlib.resources
import json
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import numpy as np
import platformdirs

from zcscore.settings import Settings, get_settings

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
SUBSET_NAME = "cifar10_subset.npz"
BATCHES_DIR = "cifar-10-batches-py"
N_ROWS = 2560
IMAGE_SHAPE = (32, 32, 3)
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
FIX_HINT = (
    "set ZCSCORE_DATA_DIR to a directory with cifar10_subset.npz or cifar-10-batches-py/, or run `zcscore data fetch`"
)
_CHUNK = 1 << 20

SourceKind = Literal["directory", "cache"]
_StatKey = tuple[tuple[str, int, int], ...]


class DataUnavailable(RuntimeError):
    """No real CIFAR-10 data could be found or fetched; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class DataSource:
    """A resolved CIFAR-10 subset: where it came from and the sha256 of the content actually used."""

    kind: SourceKind
    path: Path
    digest: str

    @property
    def source_id(self) -> str:
        """Short provenance id used in score records and cache keys."""
        return f"cifar10_subset:{self.digest[:12]}"

    @property
    def is_reference(self) -> bool:
        """True when the content equals the shared reference subset (the row index's digest)."""
        return self.digest == reference_digest()

    def describe(self) -> str:
        """One line for humans."""
        form = "cifar10_subset.npz" if self.path.suffix == ".npz" else "cifar-10-batches-py folder"
        ref = "reference subset" if self.is_reference else "NOT the reference subset"
        return f"{self.source_id} from {self.kind} {form} {self.path} ({ref}, sha256 {self.digest})"


# ---------------------------------------------------------------------------------------------- row index


@cache
def _row_index() -> tuple[np.ndarray, np.ndarray, str]:
    """The shipped (batch, row) index of the subset and its reference digest."""
    res = importlib.resources.files("zcscore").joinpath("resources").joinpath("cifar10_subset_rows.json")
    doc = json.loads(res.read_text(encoding="utf-8"))
    rows = np.asarray(doc["rows"], dtype=np.int64)
    if rows.shape != (N_ROWS, 2) or int(doc["n"]) != N_ROWS:
        raise RuntimeError(f"corrupt package resource {res}: expected {N_ROWS} (batch, row) pairs")
    return rows[:, 0], rows[:, 1], str(doc["sha256"])


def reference_digest() -> str:
    """The content digest of the shared reference subset (from the shipped row index)."""
    return _row_index()[2]


def content_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 hex of uint8 images (C-order) followed by int64 labels."""
    h = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).data)
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- readers


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 batch files that only admits what a numpy array needs (no arbitrary code)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":
            return codecs.encode
        allowed = {("multiarray", "_reconstruct"), ("numeric", "_frombuffer")}
        prefix, _, sub = module.rpartition(".")
        if prefix in ("numpy.core", "numpy._core") and (sub, name) in allowed:
            try:
                mod = importlib.import_module(f"numpy._core.{sub}")
            except ModuleNotFoundError:  # numpy < 2
                mod = importlib.import_module(f"numpy.core.{sub}")
            return getattr(mod, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")


def _load_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (10000, 3072) uint8 CHW-flat pixels and int64 labels."""
    with file.open("rb") as f:
        doc = _ArrayUnpickler(f, encoding="bytes").load()
    if not isinstance(doc, dict):
        raise ValueError("not a CIFAR-10 batch dict")
    data = doc.get(b"data", doc.get("data"))
    labels = doc.get(b"labels", doc.get("labels"))
    if data is None or labels is None:
        raise ValueError("batch dict lacks data/labels")
    data = np.asarray(data)
    labels_arr = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels_arr) != len(data):
        raise ValueError(f"unexpected batch arrays: data {data.dtype}{data.shape}, labels {labels_arr.shape}")
    return data, labels_arr


def _read_batches_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild the subset's rows from a ``cifar-10-batches-py/`` folder with the shipped row index."""
    src_batch, src_row, _ = _row_index()
    images = np.empty((N_ROWS, *IMAGE_SHAPE), dtype=np.uint8)
    labels = np.empty(N_ROWS, dtype=np.int64)
    for b in range(1, 6):
        data, batch_labels = _load_batch(folder / f"data_batch_{b}")
        sel = np.flatnonzero(src_batch == b)
        rows = src_row[sel]
        if rows.max() >= len(data):
            raise ValueError(f"data_batch_{b} has {len(data)} rows, row {int(rows.max())} needed")
        images[sel] = data[rows].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels[sel] = batch_labels[rows]
    return images, labels


def _read_npz(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """``train_x``/``train_y`` of a subset npz, checked for shape and dtype."""
    with np.load(file, allow_pickle=False) as npz:
        images = np.ascontiguousarray(npz["train_x"])
        labels = np.ascontiguousarray(npz["train_y"]).astype(np.int64)
    if images.dtype != np.uint8 or images.shape != (N_ROWS, *IMAGE_SHAPE) or labels.shape != (N_ROWS,):
        raise ValueError(
            f"expected train_x uint8 {(N_ROWS, *IMAGE_SHAPE)} and train_y ({N_ROWS},), "
            f"got {images.dtype}{images.shape} and {labels.shape}"
        )
    return images, labels


def _files_of(path: Path) -> list[Path]:
    return [path] if path.suffix == ".npz" else [path / name for name in BATCH_FILES]


def _stat_key(path: Path) -> _StatKey:
    """(path, mtime_ns, size) of every file a source reads: the cache key of its digest and arrays."""
    key = []
    for f in _files_of(path):
        st = f.stat()
        key.append((str(f.resolve()), st.st_mtime_ns, st.st_size))
    return tuple(key)


@lru_cache(maxsize=4)
def _cached_arrays(path: Path, key: _StatKey) -> tuple[np.ndarray, np.ndarray, str]:
    """Read-only arrays and digest of the source at ``path`` as of ``key``."""
    try:
        images, labels = _read_npz(path) if path.suffix == ".npz" else _read_batches_folder(path)
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise DataUnavailable(f"cannot read the CIFAR-10 subset from {path}: {exc}; {FIX_HINT}") from exc
    digest = content_digest(images, labels)
    if digest != reference_digest():
        log.warning("CIFAR-10 data at %s differs from the reference subset (sha256 %s)", path, digest)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels, digest


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        key = _stat_key(path)
    except OSError as exc:
        raise DataUnavailable(f"cannot read the CIFAR-10 subset from {path}: {exc}; {FIX_HINT}") from exc
    return _cached_arrays(path, key)


# ---------------------------------------------------------------------------------------------- resolution


def cache_dir(settings: Settings | None = None) -> Path:
    """The download/cache directory: ``settings.cache_dir`` or the platform's user cache dir for zcscore."""
    s = settings or get_settings()
    if s.cache_dir is not None:
        return Path(s.cache_dir).expanduser()
    return Path(platformdirs.user_cache_dir("zcscore"))


def _is_batches_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in BATCH_FILES)


def _candidates(settings: Settings) -> list[tuple[SourceKind, Path, bool]]:
    """Every place looked at, in order, with whether it holds usable files."""
    out: list[tuple[SourceKind, Path, bool]] = []
    if settings.data_dir is not None:
        d = Path(settings.data_dir).expanduser()
        out.append(("directory", d / SUBSET_NAME, (d / SUBSET_NAME).is_file()))
        out.append(("directory", d / BATCHES_DIR, _is_batches_folder(d / BATCHES_DIR)))
        if d.name == BATCHES_DIR:
            out.append(("directory", d, _is_batches_folder(d)))
    c = cache_dir(settings)
    out.append(("cache", c / SUBSET_NAME, (c / SUBSET_NAME).is_file()))
    out.append(("cache", c / BATCHES_DIR, _is_batches_folder(c / BATCHES_DIR)))
    return out


def tried_locations(settings: Settings | None = None) -> list[str]:
    """Human-readable list of the locations :func:`resolve_data_source` looks at, in order."""
    s = settings or get_settings()
    places = [str(p) for _, p, _ in _candidates(s)]
    if s.data_dir is None:
        places.insert(0, "data_dir (ZCSCORE_DATA_DIR unset)")
    return places


def resolve_data_source(settings: Settings | None = None) -> DataSource | None:
    """The first usable local source (data_dir, then cache dir), or None; never downloads."""
    s = settings or get_settings()
    for kind, path, present in _candidates(s):
        if present:
            return DataSource(kind=kind, path=path, digest=_arrays(path)[2])
    return None


def source_from_path(path: Path, kind: SourceKind = "directory") -> DataSource:
    """A source for an explicit ``cifar10_subset.npz``, ``cifar-10-batches-py/`` folder, or a dir holding either."""
    path = Path(path).expanduser()
    if path.is_dir() and not _is_batches_folder(path):
        for inner in (path / SUBSET_NAME, path / BATCHES_DIR):
            if inner.is_file() or _is_batches_folder(inner):
                path = inner
                break
    if not (path.is_file() or _is_batches_folder(path)):
        raise DataUnavailable(f"no cifar10_subset.npz or cifar-10-batches-py/ data_batch_1..5 at {path}; {FIX_HINT}")
    return DataSource(kind=kind, path=path, digest=_arrays(path)[2])


def load_subset_arrays(source: DataSource) -> tuple[np.ndarray, np.ndarray]:
    """The (2560, 32, 32, 3) uint8 HWC train images and int64 labels of ``source`` (fresh writable copies)."""
    images, labels, digest = _arrays(source.path)
    if digest != source.digest:
        raise DataUnavailable(f"{source.path} changed since it was resolved (sha256 {digest}); resolve it again")
    return images.copy(), labels.copy()


# ---------------------------------------------------------------------------------------------- download


def _md5_file(file: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with file.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, md5: str, dest: Path) -> None:
    """Stream ``url`` to a temp file beside ``dest``, check its md5, then rename it into place."""
    log.info("downloading CIFAR-10 from %s to %s", url, dest)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
        got = h.hexdigest()
        if got != md5:
            raise DataUnavailable(
                f"checksum mismatch for {url}: md5 {got}, expected {md5} (a corrupt download or a different file); "
                f"retry `zcscore data fetch`, or {FIX_HINT.split(', or run')[0]}"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataUnavailable(f"could not download CIFAR-10 from {url}: {exc}; {FIX_HINT}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _member_target(member: tarfile.TarInfo) -> str | None:
    """The batch file name a tar member provides, or None: only regular ``cifar-10-batches-py/data_batch_N``."""
    parts = [p for p in PurePosixPath(member.name).parts if p not in ("", ".")]
    if member.isfile() and len(parts) == 2 and parts[0] == BATCHES_DIR and parts[1] in BATCH_FILES:
        return parts[1]
    return None


def _copy_stream(src: IO[bytes], dest: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _extract_batches(archive: Path, folder: Path) -> None:
    """Write the five ``data_batch_*`` members of ``archive`` into ``folder`` (names chosen here, not by the tar)."""
    folder.mkdir(parents=True, exist_ok=True)
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _member_target(member)
                if name is None or name in found:
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src:
                    _copy_stream(src, folder / name)
                found.add(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataUnavailable(f"cannot extract {archive}: {exc}; delete it and run `zcscore data fetch` again") from exc
    missing = sorted(set(BATCH_FILES) - found)
    if missing:
        raise DataUnavailable(f"{archive} lacks {BATCHES_DIR}/{', '.join(missing)}; {FIX_HINT}")


def _write_subset_npz(folder: Path, dest: Path) -> None:
    """Build ``cifar10_subset.npz`` (train_x, train_y, train_src_batch, train_src_row) from a batches folder."""
    images, labels, _ = _arrays(folder)
    src_batch, src_row, _ = _row_index()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez_compressed(
                out,
                train_x=images,
                train_y=labels,
                train_src_batch=src_batch.astype(np.int8),
                train_src_row=src_row.astype(np.int16),
            )
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def fetch_cifar10(settings: Settings | None = None, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> DataSource:
    """Download the CIFAR-10 archive once into the cache dir, build ``cifar10_subset.npz`` there, return it."""
    root = cache_dir(settings)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataUnavailable(f"cannot create the cache dir {root}: {exc}; set ZCSCORE_CACHE_DIR") from exc
    archive = root / ARCHIVE_NAME
    if archive.is_file() and _md5_file(archive) != md5:
        log.warning("discarding %s: md5 does not match %s", archive, md5)
        archive.unlink()
    if not archive.is_file():
        _download(url, md5, archive)
    folder = root / BATCHES_DIR
    _extract_batches(archive, folder)
    subset = root / SUBSET_NAME
    _write_subset_npz(folder, subset)
    return DataSource(kind="cache", path=subset, digest=_arrays(subset)[2])


def require_data_source(settings: Settings | None = None, download: bool | None = None) -> DataSource:
    """Resolve a source; if none and downloads are allowed (default ``settings.data_download``), fetch one."""
    s = settings or get_settings()
    found = resolve_data_source(s)
    if found is not None:
        return found
    if download is None:
        download = s.data_download
    if download:
        return fetch_cifar10(s)
    raise DataUnavailable(
        "no real CIFAR-10 data found (tried: "
        + "; ".join(tried_locations(s))
        + ") and downloading is off (ZCSCORE_DATA_DOWNLOAD=false or download=False); "
        + FIX_HINT
    )
