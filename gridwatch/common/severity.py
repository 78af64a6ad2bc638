"""Severity levels of events and incidents, in one order that rules, incidents and the console
share (a rule raises an incident's severity, never lowers it, by this rank)."""

from __future__ import annotations

from typing import Literal, get_args

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
