"""
`broseph demo`: a small Broseph world whose jobs an in-process worker runs while they are shown,
then what each job type did (`run`: the command; `world`: the seeded groups and what their
members do; `show`: the tables).
"""

from __future__ import annotations

from broseph.demo.run import main

__all__ = ["main"]
