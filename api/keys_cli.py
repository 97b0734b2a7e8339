"""``zcscore keys``: create, list and revoke users' API keys in the service's database.

The key is printed once at creation; only its sha256 is stored. Creating the first key turns auth on for
every ``/v1`` route of the API (see ``zcscore.api.auth``).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``create --name N [--role] [--quota-archs-per-day] [--max-inflight]``, ``list``, ``revoke NAME``."""
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="the user's name (unique among active keys)")
    create.add_argument("--role", default="user", choices=["user", "admin"], help="admins see every job")
    create.add_argument("--quota-archs-per-day", type=int, default=None, metavar="N", help="archs per 24 h")
    create.add_argument("--max-inflight", type=int, default=None, metavar="N", help="jobs queued or running at once")
    sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = sub.add_parser("revoke", help="revoke a user's active key")
    revoke.add_argument("name")


def run(args: argparse.Namespace) -> int:
    """Run the action against ``ZCSCORE_DATABASE_URL`` (default: the embedded SQLite file)."""
    from zcscore.api.auth import hash_key, new_key
    from zcscore.settings import get_settings
    from zcscore.storage.store import open_store

    store = open_store(get_settings().resolved_database_url, migrate=True)
    if args.action == "create":
        for flag, value in (("--quota-archs-per-day", args.quota_archs_per_day), ("--max-inflight", args.max_inflight)):
            if value is not None and value < 1:
                sys.stderr.write(f"zcscore keys: {flag} must be >= 1\n")
                return 2
        key = new_key()
        try:
            store.create_key(args.name, hash_key(key), key[:10], args.role, args.quota_archs_per_day, args.max_inflight)
        except ValueError as exc:
            sys.stderr.write(f"zcscore keys: {exc}\n")
            return 2
        sys.stdout.write(key + "\n")
        sys.stderr.write(f"created {args.role} key for {args.name!r}: shown once, store it now\n")
        return 0
    if args.action == "list":
        for row in store.list_keys():
            info = {
                "name": row.name,
                "role": row.role,
                "prefix": row.prefix,
                "quota_archs_per_day": row.quota_archs_per_day,
                "max_inflight": row.max_inflight,
                "created_at": row.created_at.isoformat() if row.created_at else None,
                "revoked": row.revoked_at is not None,
            }
            sys.stdout.write(json.dumps(info) + "\n")
        return 0
    if not store.revoke_key(args.name):
        sys.stderr.write(f"zcscore keys: no active key named {args.name!r}\n")
        return 2
    sys.stderr.write(f"revoked the key of {args.name!r}\n")
    return 0
