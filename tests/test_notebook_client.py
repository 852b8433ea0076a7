"""What the grader relies on in nbclient, pinned: a new nbclient that changes it fails here, not in a class."""

from __future__ import annotations

import inspect

from nbclient import NotebookClient


def test_the_public_hooks_the_grader_uses_exist() -> None:
    """Cell start/end (the per-cell clock and timeout detection) come from nbclient's public hooks."""
    for hook in ("on_cell_start", "on_cell_executed", "on_cell_error", "on_notebook_error"):
        assert NotebookClient.class_traits().get(hook) is not None, hook


def test_the_one_private_name_the_grader_touches_is_still_the_atexit_cleanup() -> None:
    """execute/notebook.py unregisters ``_cleanup_kernel``: nbclient registers it for every kernel it starts
    and (0.10) leaves it registered when the kernel fails to start, which keeps a dead kernel's
    manager alive until the grader exits. If nbclient stops registering it, the unregister is a no-op;
    if the name goes, this fails and the line in execute/notebook.py must go too."""
    assert callable(NotebookClient._cleanup_kernel)
    source = inspect.getsource(NotebookClient.async_start_new_kernel_client) + inspect.getsource(
        NotebookClient.async_start_new_kernel)
    setup = inspect.getsource(NotebookClient.async_setup_kernel)
    assert "atexit.register(self._cleanup_kernel)" in source + setup
