#!/usr/bin/env bash
# mypy over the one `zcscore` package, which setuptools assembles from several folders (pyproject.toml
# package-dir: zcscore -> service/, zcscore.api -> api/, zcscore.workers -> workers/, zcscore.storage -> storage/).
# mypy cannot read that mapping, so we build the package tree out of symlinks in a temp dir and check it there.
# Errors name files in that tree (printed relative to it, as zcscore/...); map them back to the repo:
#   <tmp>/zcscore/api/x.py     -> api/x.py        (same for workers/ and storage/)
#   <tmp>/zcscore/x.py         -> service/x.py    (and zcscore/proxies/x.py -> service/proxies/x.py, ...)
# Exits non-zero when mypy reports errors. Extra arguments go to mypy (e.g. --no-incremental).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/zcscore"
for entry in "$repo"/service/*; do
    case "$(basename "$entry")" in __pycache__) continue ;; esac
    ln -s "$entry" "$tmp/zcscore/"
done
for sub in api workers storage; do
    ln -s "$repo/$sub" "$tmp/zcscore/$sub"
done

# Run from the tree so paths print as zcscore/...; the cache lives in the repo so warm runs take about a second.
# mypy keeps the symlinked paths (it does not resolve them), so each module is checked once, under its
# zcscore/... path, and an edit in the repo invalidates the cache (stat follows the link to the real file).
cd "$tmp"
python3 -m mypy --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" -p zcscore "$@"
