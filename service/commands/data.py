"""``zcscore data``: show which real CIFAR-10 images data-dependent proxies use, or fetch them.

``zcscore data`` (or ``zcscore data show``) prints the resolved source (exit 0) or what was tried and how to
fix it (exit 1); ``zcscore data fetch`` downloads the official CIFAR-10 archive once into the cache dir and
builds ``cifar10_subset.npz`` there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zcscore.data_source import DataSource
    from zcscore.settings import Settings


def _add_common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS defaults, so the options may be given before or after the action without one erasing the other
    parser.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="directory with real images (ZCSCORE_DATA_DIR)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=argparse.SUPPRESS, help="download/cache directory (ZCSCORE_CACHE_DIR)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Actions ``show`` (default) and ``fetch [--url URL] [--md5 MD5]``; ``--data-dir``/``--cache-dir`` overrides."""
    _add_common(parser)
    actions = parser.add_subparsers(dest="action", metavar="{show,fetch}")
    show = actions.add_parser("show", help="print the resolved data source and the settings consulted")
    _add_common(show)
    fetch = actions.add_parser("fetch", help="download CIFAR-10 once into the cache dir and build the subset")
    _add_common(fetch)
    fetch.add_argument("--url", default=None, help="archive URL (default: the official CIFAR-10 python archive)")
    fetch.add_argument("--md5", default=None, help="expected md5 of the archive (default: the official one)")


def _settings(args: argparse.Namespace) -> Settings:
    from zcscore.settings import get_settings

    update = {k: getattr(args, k) for k in ("data_dir", "cache_dir") if getattr(args, k, None) is not None}
    base = get_settings()
    return base.model_copy(update=update) if update else base


def _print_settings(settings: Settings) -> None:
    from zcscore.data_source import cache_dir

    out = sys.stdout
    data_dir = str(settings.data_dir) if settings.data_dir is not None else "unset"
    default = "" if settings.cache_dir is not None else ", default: the user cache dir"
    out.write(f"data_dir:  {data_dir} (ZCSCORE_DATA_DIR)\n")
    out.write(f"cache_dir: {cache_dir(settings)} (ZCSCORE_CACHE_DIR{default})\n")
    out.write(f"download:  {'on' if settings.data_download else 'off'} (ZCSCORE_DATA_DOWNLOAD)\n")


def _show(settings: Settings) -> int:
    from zcscore.data_source import FIX_HINT, DataUnavailable, resolve_data_source, tried_locations

    _print_settings(settings)
    out = sys.stdout
    try:
        source = resolve_data_source(settings)
    except DataUnavailable as exc:
        out.write(f"resolved:  error: {exc}\n")
        return 1
    if source is None:
        out.write("resolved:  nothing\n")
        out.write(f"tried:     {'; '.join(tried_locations(settings))}\n")
        out.write(f"fix:       {FIX_HINT}\n")
        return 1
    _print_source(source)
    return 0


def _print_source(source: DataSource) -> None:
    out = sys.stdout
    out.write(f"resolved:  {source.kind} {source.path}\n")
    out.write(f"source_id: {source.source_id}\n")
    out.write(f"sha256:    {source.digest}\n")
    out.write(f"reference: {'yes' if source.is_reference else 'no (differs from the shared reference subset)'}\n")


def _fetch(settings: Settings, url: str | None, md5: str | None) -> int:
    from zcscore.data_source import CIFAR10_MD5, CIFAR10_URL, DataUnavailable, cache_dir, fetch_cifar10

    sys.stdout.write(f"fetching {url or CIFAR10_URL} into {cache_dir(settings)}\n")
    sys.stdout.flush()
    try:
        source = fetch_cifar10(settings, url=url or CIFAR10_URL, md5=md5 or CIFAR10_MD5)
    except DataUnavailable as exc:
        sys.stderr.write(f"zcscore data fetch: {exc}\n")
        return 1
    _print_source(source)
    return 0


def run(args: argparse.Namespace) -> int:
    """``show`` (default): print the resolved source, exit 1 if none; ``fetch``: download into the cache dir."""
    settings = _settings(args)
    if getattr(args, "action", None) == "fetch":
        return _fetch(settings, args.url, args.md5)
    return _show(settings)


def main(argv: list[str] | None = None) -> int:
    """Run as ``python -m zcscore.commands.data`` (same as ``zcscore data``)."""
    parser = argparse.ArgumentParser(prog="zcscore data", description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
