"""Commands about reports and TA marks (issue: reports as good as a TA's graded PDF)."""

from __future__ import annotations
