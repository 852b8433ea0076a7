"""Choose the sandbox for student code, and say clearly when the safe one cannot run here."""

from __future__ import annotations

from grader.execute.sandbox import Sandbox, Unsandboxed

SANDBOX_CHOICES = ("bubblewrap", "none")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run on this machine; the message says why and what to do."""


def choose_sandbox(mode: str) -> Sandbox:
    if mode == "none":
        return Unsandboxed()
    from grader.execute.bubblewrap import Bubblewrap, probe

    problem = probe()
    if problem:
        raise SandboxUnavailable(
            f"bubblewrap cannot run here: {problem}. Install it (Debian/Ubuntu: apt-get install bubblewrap) "
            "or, only for code you trust (your own notebook), pass --sandbox none."
        )
    return Bubblewrap()
