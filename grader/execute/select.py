"""Choose the sandbox for student code, and say clearly when the chosen one cannot run here."""

from __future__ import annotations

from grader.execute.sandbox import Sandbox, Unsandboxed

SANDBOX_CHOICES = ("bubblewrap", "uid", "none")


class SandboxUnavailable(RuntimeError):
    """The chosen sandbox cannot run on this machine; the message says why and what to do."""


def choose_sandbox(mode: str) -> Sandbox:
    if mode == "none":
        return Unsandboxed()
    if mode == "uid":
        from grader.execute.uid import UidSandbox
        from grader.execute.uid import probe as uid_probe

        problem = uid_probe()
        if problem:
            raise SandboxUnavailable(f"the uid sandbox cannot run here: {problem}.")
        return UidSandbox()
    from grader.execute.bubblewrap import Bubblewrap, probe

    problem = probe()
    if problem:
        raise SandboxUnavailable(
            f"bubblewrap cannot run here: {problem}. Install it (Debian/Ubuntu: apt-get install bubblewrap); in a "
            "container that refuses namespaces (Docker, Gradescope) run the grader as root with --sandbox uid; only "
            "for code you trust (your own notebook) pass --sandbox none."
        )
    return Bubblewrap()
