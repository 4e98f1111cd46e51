"""`python -m escalade_platform.migrations [upgrade|current] [URL]`: bring Escalade's database to the newest
revision (every service's tables), or show the revision it is at. URL defaults to $ESCALADE_DATABASE_URL,
then the default SQLite file. Exit status: 0 done, 1 the database is unreachable or locked, 2 bad usage."""

from __future__ import annotations

import asyncio
import os
import sys

from sqlalchemy import exc as sa_exc

from escalade_platform.migrations import current_revision, upgrade
from escalade_platform.settings import DEFAULT_DATABASE_URL

USAGE = "usage: python -m escalade_platform.migrations [upgrade|current] [URL]"


def main(argv: list[str] | None = None) -> int:
    """Run the command; see the module docstring for the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    action = args.pop(0) if args else "upgrade"
    url = args.pop(0) if args else os.environ.get("ESCALADE_DATABASE_URL", DEFAULT_DATABASE_URL)
    if action not in {"upgrade", "current"} or args:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if action == "upgrade":
            asyncio.run(upgrade(url))
        print(asyncio.run(current_revision(url)) or "(empty database)")
    except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError, TimeoutError) as error:
        cause = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig is not None else error
        print(f"the database is unavailable ({type(cause).__name__}: {cause})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
