"""The ledger domain: money, accounts, journals, invariants and errors. Standard library only."""
