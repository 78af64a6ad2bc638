"""Reading the audit log through the accounts, without a database session of one's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch.accounts import audit

if TYPE_CHECKING:
    from tests.support.gridapp import Env

pytest_plugins = ("tests.support.gridapp",)


def test_audit_entries_are_filtered_newest_first_and_page_by_id(env: Env) -> None:
    store, accounts = env.store, env.accounts
    with store.writing() as session:
        for n in range(3):
            audit.record(session, "system:escalation", "incident.escalated", target="inc-1",
                         details={"level": n + 1})
        audit.record(session, "op-a", "incident.transition", target="inc-1")
        audit.record(session, "system:escalation", "incident.escalated", target="inc-2")

    first = accounts.audit_entries(actor="system:escalation", target="inc-1",
                                   actions={"incident.escalated"}, limit=2)
    rest = accounts.audit_entries(actor="system:escalation", target="inc-1",
                                  actions={"incident.escalated"}, before_id=first[-1].id)

    assert [e.details["level"] for e in first + rest] == [3, 2, 1]
    assert {e.target for e in accounts.audit_entries(actions={"incident.escalated"})} == {
        "inc-1", "inc-2"}
