"""`python -m routing_service.store [upgrade|current] [URL]`: apply or show the store's migrations by hand
(the routing service also upgrades on start). URL defaults to $ESCALADE_DATABASE_URL, then the default
SQLite file."""

from __future__ import annotations

import asyncio
import os
import sys

from routing_service.domain.errors import Unavailable
from routing_service.store.engine import DEFAULT_DATABASE_URL
from routing_service.store.migrate import current_revision, upgrade


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 1 when the database is unreachable, 2 on bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    action = args.pop(0) if args else "upgrade"
    url = args.pop(0) if args else os.environ.get("ESCALADE_DATABASE_URL", DEFAULT_DATABASE_URL)
    if action not in {"upgrade", "current"} or args:
        print("usage: python -m routing_service.store [upgrade|current] [URL]", file=sys.stderr)
        return 2
    try:
        if action == "upgrade":
            asyncio.run(upgrade(url))
        print(asyncio.run(current_revision(url)) or "(empty database)")
    except Unavailable as error:
        print(error.message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
