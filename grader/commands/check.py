"""Commands for students and CI: check a notebook before handing it in."""

from __future__ import annotations
