"""``/redfish/v1/TaskService``: follow an update task to a terminal state."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .errors import BmcRefused, RedfishError, TaskFailed, TaskTimeout, passing

log = logging.getLogger(__name__)

TERMINAL = frozenset({"Completed", "Exception", "Killed", "Cancelled"})


@dataclass
class Backoff:
    """Poll delays: ``first``, growing by ``factor``, capped at ``cap``. A low cap
    matters: the end of a task is seen up to one delay late, on every node."""

    first: float = 0.25
    cap: float = 1.0
    factor: float = 1.5

    def delays(self):
        delay = self.first
        while True:
            yield delay
            delay = min(self.cap, delay * self.factor)


@dataclass
class Outcome:
    """A finished task: its state, status and the BMC's messages."""

    state: str
    status: str | None = None
    messages: list = field(default_factory=list)

    @classmethod
    def from_task(cls, task: dict) -> "Outcome":
        return cls(task.get("TaskState", "Completed"), task.get("TaskStatus"),
                   [m for m in task.get("Messages") or () if isinstance(m, dict)])

    @property
    def ok(self) -> bool:
        return self.state == "Completed" and self.status not in ("Critical",)

    def text(self) -> str:
        texts = [str(m.get("Message") or m.get("MessageId")) for m in self.messages]
        return "; ".join(t for t in texts if t) or f"task {self.state}"

    def reset_request(self) -> tuple | None:
        """(target, ResetType) when the task says a reset applies the update, else None."""
        for m in self.messages:
            message_id = str(m.get("MessageId", ""))
            if message_id.endswith(".ResetRequired") or message_id.endswith(".AwaitingActivation"):
                args = list(m.get("MessageArgs") or [])
                target = args[0] if args and str(args[0]).startswith("/") else None
                kind = args[1] if len(args) > 1 else None
                return target, kind
        return None


def poll_once(client, ref) -> Outcome | None:
    """One look at the task: its outcome when terminal, None while it runs."""
    if ref.done:
        return Outcome("Completed")
    if ref.monitor:
        answer = client.request("GET", ref.monitor, what="task monitor", ok=(404,))
        if answer.status == 202:
            return None
        if "TaskState" in answer.body:
            return _terminal(answer.body)
        if answer.status in (200, 204) and not ref.task:
            return Outcome("Completed")   # the monitor answered with the operation's result
        if answer.status == 404 and not ref.task:
            raise BmcRefused("task monitor vanished before the task finished", client.name)
    return _terminal(client.get(ref.task, "task"))


def _terminal(task: dict) -> Outcome | None:
    outcome = Outcome.from_task(task)
    return outcome if outcome.state in TERMINAL else None


def follow(client, ref, timeout: float = 1800.0, backoff: Backoff | None = None,
           clock=time.monotonic, sleep=time.sleep) -> Outcome:
    """Poll until the task is terminal; TaskFailed unless it Completed.

    A BMC busy with an update answers 5xx or nothing for a while (many reset
    themselves to apply it), so a poll that fails that way is only a look that
    saw nothing: polling goes on until ``timeout``.
    """
    deadline, last = clock() + timeout, None
    for delay in (backoff or Backoff()).delays():
        try:
            outcome = poll_once(client, ref)
        except RedfishError as exc:
            if not passing(exc):
                raise
            outcome, last = None, exc
            log.debug("%s: task poll: %s; polling on", client.name, exc.message)
        if outcome is not None:
            if not outcome.ok:
                raise TaskFailed(f"update task {outcome.state}: {outcome.text()}", client.name)
            return outcome
        if clock() + delay > deadline:
            seen = f" (last poll: {last.message})" if last is not None else ""
            raise TaskTimeout(f"update task still running after {timeout:.0f}s{seen}", client.name)
        sleep(delay)
    raise AssertionError("unreachable")
