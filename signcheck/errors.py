"""The small error hierarchy. Every error a user can cause says first, in one sentence,
what to fix; the details (command, exit code, output tail) follow."""

from __future__ import annotations

from collections.abc import Sequence


class SigncheckError(Exception):
    """Base class: `str(err)` is the one actionable sentence, `details` the evidence."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        if self.details:
            return f"{self.message}\n{self.details}"
        return self.message


class ConfigError(SigncheckError):
    """A setting, option or input file is wrong."""


class ToolError(SigncheckError):
    """An external command failed. Keeps argv, exit code and output for the report."""

    def __init__(
        self,
        message: str,
        argv: Sequence[str] = (),
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        parts = []
        if self.argv:
            parts.append("command: " + " ".join(self.argv))
        if returncode is not None:
            parts.append(f"exit code: {returncode}")
        tail = tail_lines(stderr or stdout, 30)
        if tail:
            parts.append("output (last lines):\n" + tail)
        super().__init__(message, "\n".join(parts))


class ToolNotFound(SigncheckError):
    """A pinned tool is neither configured, cached, on PATH nor buildable."""


class BuildError(SigncheckError):
    """Building a pinned tool from its Go module failed at a named step."""


class EnvironmentNotReady(SigncheckError):
    """A service or the cluster did not become ready; names what, where and the last observation."""


class WebhookUnavailable(EnvironmentNotReady):
    """An admission webhook could not be called (Kyverno down): the answer says nothing about
    signatures, and no later admission test can say anything either."""


class EnforcementBroken(EnvironmentNotReady):
    """The canary failed: the scenarios that judge admission cannot be judged; the message
    names the cause the diagnosis observed."""


class RegistryUnavailable(EnvironmentNotReady):
    """Kyverno could not read the registry at all (unreachable, TLS or scheme mismatch,
    credentials refused): no later verification against it can say anything either."""


RUN_STOPPERS: tuple[type[SigncheckError], ...] = (WebhookUnavailable, RegistryUnavailable)
"""Met by a test unexpectedly, these stop the run: every later test would meet them too."""


def tail_lines(text: str, n: int) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[-n:])
