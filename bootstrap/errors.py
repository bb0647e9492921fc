"""One error hierarchy for the whole appliance.

The CLI maps :class:`InputError` (the user's mistake) to exit 2 and every other
:class:`BootstrapError` (the work itself failed) to exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass


class BootstrapError(Exception):
    """Base of every error the appliance raises on purpose."""

    template = "{message}"

    def __init__(self, message: str = "", **fields):
        self.fields = dict(fields, message=message)
        super().__init__(self.template.format(**self.fields))


class InputError(BootstrapError):
    """Bad input from the user: a zone file, an argument, a file that is missing."""


class WorkError(BootstrapError):
    """The work itself failed: a BMC, a service, a playbook."""


MAX_MESSAGE = 300  # a problem quotes the zone's values; a hostile value can be huge


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (control characters escaped), cut at ``limit`` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a zone file, reported as ``file:line: message`` on one line."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {one_line(self.message)}"


class ZoneInvalid(InputError):
    """A zone file with one or more problems; ``problems`` lists every one."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
