"""The policy the service currently routes with, reloaded without a restart.

`PolicySource.load(path)` reads the file once (a bad file at start-up is an error). After that, `reload()`
(on SIGHUP, or when `watch()` sees the file or its confirmation marker change) swaps in the new policy only
when it is valid; a bad file is logged with the PolicyError's file, field and reason and the last good policy
stays.

With the recorded decisions to read (`follow_decisions`, wired by the server), a reload first replays the
latest ones under the new file and under the policy in use (`routing_service.domain.replay`), and
`policy_reloaded` logs how the change alone would move them. When the policy in use has a `reload_guard`
and the change would send more than its `max_moved_share` of those calls to a different team, the new file
is held back (`policy_reload_held`, a warning that says how to confirm) until `escalade policy confirm FILE`
writes a marker holding the digest of the file's content (`routing_service.policy.confirmation`); the next
reload then applies it. The guard of the policy in use decides, so a new file cannot lift the guard that
would hold it back.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import structlog

from routing_service.domain.models import Decision, Policy
from routing_service.domain.replay import PolicyDiff, compare
from routing_service.policy.confirmation import confirmation_marker, is_confirmed
from routing_service.policy.errors import PolicyError
from routing_service.policy.loader import file_stamp, load_policy, parse_policy

__all__ = ["DEFAULT_REPLAY_LAST", "PolicySource", "RecentDecisions", "ReloadHeld"]

log = structlog.get_logger(__name__)

RecentDecisions = Callable[[int], Awaitable[Sequence[Decision]]]
"""The latest `n` recorded decisions (newest first)."""

DEFAULT_REPLAY_LAST = 200
"""Decisions replayed for the reload's diff summary when the policy in use has no reload_guard."""


class ReloadHeld(Exception):
    """A valid new policy file that the reload guard holds back until it is confirmed."""

    def __init__(self, message: str, diff: PolicyDiff | None) -> None:
        super().__init__(message)
        self.diff = diff


class PolicySource:
    """Holds the current `Policy`; `current` is what each request reads."""

    def __init__(self, policy: Policy, path: Path | None = None) -> None:
        self._policy = policy
        self.path = path
        self._stamp = self._stamps()
        self._recent: RecentDecisions | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[bool]] = set()
        self.last_error: Exception | None = None
        """Why the last reload was refused or held (None after a good one)."""
        self.last_diff: PolicyDiff | None = None
        """What the last reload checked against the recorded decisions (None when nothing was replayed)."""
        self.reloads = 0

    @classmethod
    def load(cls, path: str | Path) -> PolicySource:
        """Raises PolicyError when the file is bad (nothing to fall back on at start-up)."""
        path = Path(path)
        return cls(load_policy(path), path)

    @property
    def current(self) -> Policy:
        return self._policy

    def follow_decisions(self, recent: RecentDecisions) -> None:
        """Replay the decisions `recent` returns under each new file before applying it."""
        self._recent = recent

    async def reload(self) -> bool:
        """Re-read the file; True when a new policy is in use, False when the last good one was kept."""
        if self.path is None:
            return False
        async with self._lock:
            return await self._reload(self.path)

    async def _reload(self, path: Path) -> bool:
        self._stamp = self._stamps()
        try:
            content, policy = _read(path)
        except PolicyError as exc:
            self.last_error = exc
            log.error("policy_reload_rejected", path=str(path), error=str(exc), kept=self._policy.name)
            return False
        except OSError as exc:
            self.last_error = exc
            log.error("policy_reload_failed", path=str(path), error=str(exc), kept=self._policy.name)
            return False
        diff, held = await self._check(path, policy, content)
        self.last_diff = diff
        if held is not None:
            self.last_error = held
            return False
        self._policy = policy
        self.last_error = None
        self.reloads += 1
        log.info("policy_reloaded", path=str(path), policy=policy.name, **_summary(diff))
        return True

    async def _check(
        self, path: Path, policy: Policy, content: bytes
    ) -> tuple[PolicyDiff | None, ReloadHeld | None]:
        """Replay the latest decisions under `policy`; a hold when the guard of the policy in use says no."""
        guard = self._policy.reload_guard
        if self._recent is None:
            return None, None
        try:
            recent = await self._recent(guard.replay_last if guard is not None else DEFAULT_REPLAY_LAST)
        except Exception as exc:  # the store is down: the guard cannot judge the change
            if guard is None or is_confirmed(path, content):
                log.warning("policy_reload_unchecked", path=str(path), cause=str(exc)[:200])
                return None, None
            message = (
                f"policy {policy.name!r} from {path} not applied: the recorded decisions could not be read "
                f"to check it against reload_guard ({str(exc)[:200]}); to apply it unchecked run "
                f"`escalade policy confirm {path}` and reload again"
            )
            log.warning("policy_reload_held", path=str(path), kept=self._policy.name, reason=message)
            return None, ReloadHeld(message, None)
        diff = compare(policy, recent, baseline=self._policy)
        if guard is None or diff.moved_share <= guard.max_moved_share:
            return diff, None
        if is_confirmed(path, content):
            log.warning(
                "policy_reload_confirmed",
                path=str(path),
                marker=str(confirmation_marker(path)),
                max_moved_share=guard.max_moved_share,
                **_summary(diff),
            )
            return diff, None
        message = (
            f"policy {policy.name!r} from {path} not applied: it would send {len(diff.moved)} of the last "
            f"{len(diff.replayed)} recorded calls ({diff.moved_share:.0%}) to a different team, more than "
            f"reload_guard.max_moved_share {guard.max_moved_share:.0%}. Review it with "
            f"`escalade policy check {path} --replay`, then confirm with `escalade policy confirm {path}` "
            "and reload again"
        )
        log.warning(
            "policy_reload_held",
            path=str(path),
            kept=self._policy.name,
            reason=message,
            max_moved_share=guard.max_moved_share,
            **_summary(diff),
        )
        return diff, ReloadHeld(message, diff)

    def _stamps(self) -> tuple[object, ...] | None:
        if self.path is None:
            return None
        return (file_stamp(self.path), file_stamp(confirmation_marker(self.path)))

    def changed_on_disk(self) -> bool:
        """The file or its confirmation marker changed since the last (re)load."""
        return self.path is not None and self._stamps() != self._stamp

    async def watch(self, poll_seconds: float = 2.0) -> None:
        """Poll the file and reload when it changed; runs until cancelled."""
        while True:
            await asyncio.sleep(poll_seconds)
            if self.changed_on_disk():
                await self.reload()

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Reload on SIGHUP (POSIX only); False when signals cannot be installed here."""
        if not hasattr(signal, "SIGHUP"):
            return False
        try:
            loop.add_signal_handler(signal.SIGHUP, self._reload_soon, loop)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def _reload_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self.reload())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _read(path: Path) -> tuple[bytes, Policy]:
    """The file's bytes (a small file, read at once) and the policy they hold; PolicyError naming the file
    when it is not valid, OSError when it cannot be read."""
    content = path.read_bytes()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError.single(str(path), "", f"not UTF-8 text (byte {exc.start})") from None
    return content, parse_policy(text, source=str(path))


def _summary(diff: PolicyDiff | None) -> dict[str, object]:
    return {} if diff is None else diff.summary()
