"""`python -m routing_service.store [upgrade|current] [URL]`: the same command as
`python -m escalade_platform.migrations` (the database's one history, every service's tables), under the
name it has always had."""

from __future__ import annotations

from escalade_platform.migrations.__main__ import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
