"""Property-based, stateful: random sequences of operations of both APIs against a model.

A Hypothesis ``RuleBasedStateMachine`` drives the real app (through ASGI) with registrations,
top-ups, payments, transfers, settlements, idempotent replays, savings deposits and withdrawals,
valid and invalid, and checks after every step that the app agrees with a simple model and that
every ledger invariant holds. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dompet.container import worker_config
from dompet.domain.invariants import check
from dompet.domain.ledger import savings_account, wallet_account
from dompet.domain.money import MAX_AMOUNT
from dompet.storage import migrate
from dompet.worker.inprocess import SettlementWorker
from tests.conftest import fast_settings
from tests.reliability.helpers import App, AppContext

T = TypeVar("T")
_serial = itertools.count(1)

amounts = st.one_of(
    st.integers(min_value=1, max_value=50_000),
    st.sampled_from([1, 99_999, MAX_AMOUNT]),
)
bad_amounts: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([0, -1, MAX_AMOUNT + 1, 10.5, "100", True, None, [], {}]),
    st.integers(max_value=0),
    st.integers(min_value=MAX_AMOUNT + 1, max_value=2**70),
)
remarks = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


@dataclass
class WalletUser:
    user_id: str
    auth: dict[str, str]
    balance: int = 0


@dataclass
class SavingsAccount:
    no_rekening: str
    saldo: int = 0


@dataclass
class Sent:
    """A request sent with an Idempotency-Key, and the answer it got."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    answer: Any


@dataclass
class Shared:
    """One app for the whole test, driven from one event loop."""

    loop: asyncio.AbstractEventLoop
    app: App
    worker: SettlementWorker
    pending: list[tuple[WalletUser, int]] = field(default_factory=list)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


class LedgerMachine(RuleBasedStateMachine):
    shared: Shared

    users = Bundle("users")
    accounts = Bundle("accounts")

    def __init__(self) -> None:
        super().__init__()
        self.known_users: list[WalletUser] = []
        self.known_accounts: list[SavingsAccount] = []
        self.sent: list[Sent] = []

    # -- helpers ---------------------------------------------------------------------------
    @property
    def http(self) -> httpx.AsyncClient:
        return self.shared.app.http

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        response = self.shared.run(self.http.request(method, path, json=body, headers=headers))
        assert response.status_code < 500, response.text
        return response

    def settle_all(self) -> None:
        while self.shared.run(self.shared.worker.run_once()):
            pass
        for target, amount in self.shared.pending:
            target.balance += amount
        self.shared.pending.clear()

    # -- e-wallet --------------------------------------------------------------------------
    @initialize(target=users)
    def first_user(self) -> WalletUser:
        return self._new_user()

    @rule(target=users)
    def register(self) -> WalletUser:
        return self._new_user()

    def _new_user(self) -> WalletUser:
        phone = f"0896{next(_serial):08d}"
        body = {"first_name": "Prop", "phone_number": phone, "pin": "135790"}
        registered = self.call("POST", "/register", body)
        assert registered.status_code == 200, registered.text
        login = self.call("POST", "/login", {"phone_number": phone, "pin": "135790"})
        assert login.status_code == 200
        token = login.json()["result"]["access_token"]
        user = WalletUser(
            registered.json()["result"]["user_id"], {"Authorization": f"Bearer {token}"}
        )
        self.known_users.append(user)
        return user

    def _money(
        self, user: WalletUser, path: str, body: dict[str, Any], key: str | None
    ) -> httpx.Response:
        headers = dict(user.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        response = self.call("POST", path, body, headers)
        if key is not None:
            self.sent.append(Sent(path, body, headers, response.status_code, response.json()))
        return response

    @rule(user=users, amount=amounts, key=st.none() | st.uuids().map(str))
    def topup(self, user: WalletUser, amount: int, key: str | None) -> None:
        response = self._money(user, "/topup", {"amount": amount}, key)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert (result["balance_before"], result["balance_after"]) == (
            user.balance,
            user.balance + amount,
        )
        user.balance += amount

    @rule(user=users, amount=amounts, text=remarks, key=st.none() | st.uuids().map(str))
    def pay(self, user: WalletUser, amount: int, text: str, key: str | None) -> None:
        response = self._money(user, "/pay", {"amount": amount, "remarks": text}, key)
        if amount > user.balance:
            assert (response.status_code, response.json()) == (
                400,
                {"message": "Balance is not enough"},
            )
            return
        assert response.status_code == 200, response.text
        assert response.json()["result"]["balance_after"] == user.balance - amount
        user.balance -= amount

    @rule(sender=users, payee=users, amount=amounts, key=st.none() | st.uuids().map(str))
    def transfer(self, sender: WalletUser, payee: WalletUser, amount: int, key: str | None) -> None:
        body = {"target_user": payee.user_id, "amount": amount, "remarks": "prop"}
        response = self._money(sender, "/transfer", body, key)
        if sender is payee:
            assert response.status_code == 400
            return
        if amount > sender.balance:
            assert response.json() == {"message": "Balance is not enough"}
            return
        assert response.status_code == 200, response.text
        sender.balance -= amount
        self.shared.pending.append((payee, amount))

    @rule(user=users, path=st.sampled_from(["/topup", "/pay"]), amount=bad_amounts)
    def bad_amount(self, user: WalletUser, path: str, amount: Any) -> None:
        response = self.call("POST", path, {"amount": amount}, user.auth)
        assert response.status_code == 400
        assert set(response.json()) == {"message"}

    @rule(user=users)
    def forged_token(self, user: WalletUser) -> None:
        token = user.auth["Authorization"]
        forged = {"Authorization": token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")}
        response = self.call("POST", "/topup", {"amount": 5}, forged)
        assert response.status_code == 401

    @rule()
    def settle(self) -> None:
        self.settle_all()

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """A retried request replays its first answer and moves nothing."""
        sent = data.draw(st.sampled_from(self.sent))
        response = self.call("POST", sent.path, sent.body, sent.headers)
        assert (response.status_code, response.json()) == (sent.status, sent.answer)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), delta=st.integers(min_value=1, max_value=10))
    def reuse_key_with_another_body(self, data: st.DataObject, delta: int) -> None:
        sent = data.draw(st.sampled_from(self.sent))
        amount = sent.body["amount"]
        body = {**sent.body, "amount": amount - delta if amount > delta else amount + delta}
        response = self.call("POST", sent.path, body, sent.headers)
        assert response.status_code == 409
        assert "Idempotency-Key" in response.json()["message"]

    @rule(user=users)
    def history_agrees(self, user: WalletUser) -> None:
        response = self.call("GET", "/transactions", headers=user.auth)
        items = response.json()["result"]
        assert {i["user_id"] for i in items} <= {user.user_id}
        latest = items[0]["balance_after"] if items else 0
        pending_in = sum(a for t, a in self.shared.pending if t is user)
        assert latest == user.balance, (latest, user.balance, pending_in)

    # -- savings ---------------------------------------------------------------------------
    @rule(target=accounts)
    def daftar(self) -> SavingsAccount:
        n = next(_serial)
        body = {"nama": "Prop", "nik": f"{3175000000000000 + n}", "no_hp": f"0897{n:08d}"}
        response = self.call("POST", "/daftar", body)
        assert response.status_code == 200, response.text
        account = SavingsAccount(response.json()["no_rekening"])
        self.known_accounts.append(account)
        return account

    @rule(account=accounts, nominal=amounts, key=st.none() | st.uuids().map(str))
    def tabung(self, account: SavingsAccount, nominal: int, key: str | None) -> None:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"no_rekening": account.no_rekening, "nominal": nominal}
        response = self.call("POST", "/tabung", body, headers)
        assert response.json() == {"saldo": account.saldo + nominal}
        account.saldo += nominal
        if key:
            again = self.call("POST", "/tabung", body, headers)
            assert again.json() == {"saldo": account.saldo}

    @rule(account=accounts, nominal=amounts)
    def tarik(self, account: SavingsAccount, nominal: int) -> None:
        body = {"no_rekening": account.no_rekening, "nominal": nominal}
        response = self.call("POST", "/tarik", body)
        if nominal > account.saldo:
            assert response.status_code == 400
            assert set(response.json()) == {"remark"}
            return
        assert response.json() == {"saldo": account.saldo - nominal}
        account.saldo -= nominal

    @rule(account=consumes(accounts))
    def mutasi_agrees(self, account: SavingsAccount) -> None:
        items = self.call("GET", f"/mutasi/{account.no_rekening}").json()["mutasi"]
        total = sum(i["nominal"] if i["kode_transaksi"] == "C" else -i["nominal"] for i in items)
        assert total == account.saldo

    # -- after every step ------------------------------------------------------------------
    @invariant()
    def ledger_invariants_hold(self) -> None:
        report = check(self.shared.run(self.shared.app.container.store.snapshot()))
        assert report.ok, report.violations

    @invariant()
    def balances_match_the_model(self) -> None:
        store = self.shared.app.container.store
        for user in self.known_users:
            assert self.shared.run(store.balance(wallet_account(user.user_id))) == user.balance
        for account in self.known_accounts:
            balance = self.shared.run(store.balance(savings_account(account.no_rekening)))
            assert balance == account.saldo

    def teardown(self) -> None:
        self.settle_all()  # nothing left pending for the next example


def test_random_operation_sequences_keep_the_ledger_sound(raw_database_url: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(migrate(raw_database_url, mongodb_allow_standalone=True))
        context = AppContext(fast_settings(raw_database_url, worker_enabled=False))
        app = loop.run_until_complete(context.__aenter__())
        try:
            container = app.container
            worker = SettlementWorker(
                container.store,
                container.settlement,
                container.clock,
                worker_config(container.settings, "prop"),
            )
            LedgerMachine.shared = Shared(loop, app, worker)
            run_state_machine_as_test(
                LedgerMachine,
                settings=settings(
                    max_examples=20,
                    stateful_step_count=30,
                    deadline=None,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                ),
            )
        finally:
            loop.run_until_complete(context.__aexit__(None, None, None))
    finally:
        loop.close()
