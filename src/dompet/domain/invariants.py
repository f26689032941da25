"""The ledger's invariants, checkable at any time against a snapshot of the store."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """What a store reports for the invariant check, read in one consistent view."""

    customer_balances: dict[str, int]
    """Materialised balance of every customer account."""
    posting_sums: dict[str, int]
    """Sum of postings per account (customer and system)."""
    pending_transfer_total: int
    broken_entries: list[str] = field(default_factory=list)
    """Ids of entries whose balance_after != balance_before + amount."""
    broken_chains: list[str] = field(default_factory=list)
    """Accounts whose entries do not chain (before of one = after of the previous)."""
    unbalanced_journals: list[str] = field(default_factory=list)
    misjournaled_transfers: list[str] = field(default_factory=list)
    """Transfers without exactly one debit journal, and exactly one settlement (SUCCESS) or
    refund (FAILED) journal, and neither while PENDING: credited twice, or lost."""
    miscopied_entries: list[str] = field(default_factory=list)
    """Ids of entries whose kind, reference or remarks differ from their journal's (a store
    that keeps copies of them on each entry; one that stores them once reports none)."""
    misrendered_entries: list[str] = field(default_factory=list)
    """Ids of entries whose history item, stored when written, differs from the item the entry
    renders to now (a store that keeps rendered items checks those of its own layout)."""


@dataclass(frozen=True, slots=True)
class InvariantReport:
    violations: list[str]
    accounts_checked: int
    total_customer_balance: int
    transit_balance: int

    @property
    def ok(self) -> bool:
        return not self.violations


def check(snapshot: LedgerSnapshot) -> InvariantReport:
    from dompet.domain.ledger import SystemAccount

    violations: list[str] = []
    total = sum(snapshot.posting_sums.values())
    if total != 0:
        violations.append(f"sum of all balances is {total}, expected 0")
    for account, balance in sorted(snapshot.customer_balances.items()):
        if balance < 0:
            violations.append(f"{account} has a negative balance {balance}")
        posted = snapshot.posting_sums.get(account, 0)
        if posted != balance:
            violations.append(f"{account} balance {balance} != sum of its postings {posted}")
    transit = snapshot.posting_sums.get(SystemAccount.TRANSIT, 0)
    if transit != snapshot.pending_transfer_total:
        violations.append(
            f"transit balance {transit} != sum of PENDING transfers "
            f"{snapshot.pending_transfer_total}"
        )
    violations += [
        f"entry {e}: balance_after != balance_before + amount" for e in snapshot.broken_entries
    ]
    violations += [f"{a}: entries do not chain" for a in snapshot.broken_chains]
    violations += [f"journal {j} does not sum to zero" for j in snapshot.unbalanced_journals]
    violations += [
        f"transfer {t}: journals do not match its status (one debit, then one credit or refund)"
        for t in snapshot.misjournaled_transfers
    ]
    violations += [
        f"entry {e}: kind, reference or remarks differ from its journal's"
        for e in snapshot.miscopied_entries
    ]
    violations += [
        f"entry {e}: its stored history item differs from the entry"
        for e in snapshot.misrendered_entries
    ]
    return InvariantReport(
        violations=violations,
        accounts_checked=len(snapshot.customer_balances),
        total_customer_balance=sum(snapshot.customer_balances.values()),
        transit_balance=transit,
    )
