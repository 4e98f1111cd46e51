"""The policy the service currently routes with, reloaded without a restart.

`PolicySource.load(path)` reads the file once (a bad file at start-up is an error). After that, `reload()`
(on SIGHUP, or when `watch()` sees the file's mtime/size change) swaps in the new policy only when it is
valid; a bad file is logged with the PolicyError's file, field and reason and the last good policy stays.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog

from routing_service.domain.models import Policy
from routing_service.policy.errors import PolicyError
from routing_service.policy.loader import file_stamp, load_policy

__all__ = ["PolicySource"]

log = structlog.get_logger(__name__)


class PolicySource:
    """Holds the current `Policy`; `current` is what each request reads."""

    def __init__(self, policy: Policy, path: Path | None = None) -> None:
        self._policy = policy
        self.path = path
        self._stamp = file_stamp(path) if path is not None else None
        self.last_error: Exception | None = None
        """Why the last reload was refused (None after a good one)."""
        self.reloads = 0

    @classmethod
    def load(cls, path: str | Path) -> PolicySource:
        """Raises PolicyError when the file is bad (nothing to fall back on at start-up)."""
        path = Path(path)
        return cls(load_policy(path), path)

    @property
    def current(self) -> Policy:
        return self._policy

    def reload(self) -> bool:
        """Re-read the file; True when a new policy is in use, False when the last good one was kept."""
        if self.path is None:
            return False
        self._stamp = file_stamp(self.path)
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.last_error = exc
            log.error("policy_reload_rejected", path=str(self.path), error=str(exc), kept=self._policy.name)
            return False
        except OSError as exc:
            self.last_error = exc
            log.error("policy_reload_failed", path=str(self.path), error=str(exc), kept=self._policy.name)
            return False
        self._policy = policy
        self.last_error = None
        self.reloads += 1
        log.info("policy_reloaded", path=str(self.path), policy=policy.name)
        return True

    def changed_on_disk(self) -> bool:
        return self.path is not None and file_stamp(self.path) != self._stamp

    async def watch(self, poll_seconds: float = 2.0) -> None:
        """Poll the file and reload when it changed; runs until cancelled."""
        while True:
            await asyncio.sleep(poll_seconds)
            if self.changed_on_disk():
                self.reload()

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Reload on SIGHUP (POSIX only); False when signals cannot be installed here."""
        if not hasattr(signal, "SIGHUP"):
            return False
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True
