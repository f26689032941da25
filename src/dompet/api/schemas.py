"""Request and response models of the e-wallet API (strict: no coercion, no unknown fields)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from dompet.domain.money import MAX_AMOUNT


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def no_control_characters(value: str) -> str:
    """Refuse control characters (NUL, ESC, DEL ...) and lone surrogates in any text field.

    They have no place in names, remarks or PINs, PostgreSQL cannot store NUL, and a lone
    surrogate cannot be encoded as UTF-8: let them in and the database answers with a 500.
    """
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[StrictStr, AfterValidator(no_control_characters)]
"""Every string field of both APIs is a ``Text``: strict, and free of control characters."""

INVISIBLE = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi
    "\u200b\u200c\u200d\u2060\ufeff\u180e"  # zero-width
)
"""Bidirectional controls (overrides, embeddings, isolates, marks) and zero-width characters."""


def no_invisible_characters(value: str) -> str:
    """Refuse bidirectional controls and zero-width characters in what people read.

    A name or remark is shown to other people (a transfer's recipient, an operator, a
    statement): ``U+202E`` can make ``Refund 0001`` read as something else, and zero-width
    characters make two different names look the same.
    """
    if not INVISIBLE.isdisjoint(value):
        raise ValueError("must not contain bidirectional-override or zero-width characters")
    return value


Shown = Annotated[Text, AfterValidator(no_invisible_characters)]
"""Text that is shown to people: names, addresses, remarks (and the savings API's nama)."""

Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, examples=[500000])]
Name = Annotated[Shown, Field(min_length=1, max_length=100), AfterValidator(_not_blank)]
OptionalName = Annotated[Shown, Field(max_length=100)]
Address = Annotated[Shown, Field(max_length=500)]
Remarks = Annotated[Shown, Field(max_length=500)]
Phone = Annotated[Text, Field(min_length=1, max_length=20), AfterValidator(_not_blank)]
NewPhone = Annotated[
    Phone,
    Field(
        description="Indonesian mobile number: 08..., 628... or +628... (stored as 08...)",
        json_schema_extra={"pattern": r"^(\+62|62|0)8[0-9]{8,11}$"},
        examples=["0811255501"],
    ),
]
"""A phone number being registered: the domain checks it, the document says what it wants."""
Pin = Annotated[Text, Field(pattern=r"^[0-9]{6}$", examples=["123456"])]
Token = Annotated[Text, Field(min_length=1, max_length=4096)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "Guntur",
                    "last_name": "Saputro",
                    "phone_number": "0811255501",
                    "address": "Jl. Kebon Sirih No. 1",
                    "pin": "123456",
                }
            ]
        }
    )
    first_name: Name
    last_name: OptionalName = ""
    phone_number: NewPhone
    address: Address = ""
    pin: Pin


class LoginRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone_number": "0811255501", "pin": "123456"}]}
    )
    phone_number: Phone
    pin: Annotated[Text, Field(min_length=1, max_length=64)]


class RefreshRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."}]
        }
    )
    refresh_token: Token


class LogoutRequest(Strict):
    """No fields: ``{}`` (or no body at all)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


class TopUpRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 500000}]})
    amount: Amount


class PayRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": 100000, "remarks": "Pulsa Telkomsel 100k"}]}
    )
    amount: Amount
    remarks: Remarks = ""


class TransferRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "target_user": "b7342e8e-e8e7-4a5d-873e-b1b1bfcdeddb",
                    "amount": 30000,
                    "remarks": "Hadiah Ultah",
                }
            ]
        }
    )
    target_user: Annotated[Text, Field(min_length=1, max_length=64)]
    amount: Amount
    remarks: Remarks = ""


class ProfileRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "Tom",
                    "last_name": "Araya",
                    "address": "Jl. Diponegoro No. 215",
                }
            ]
        }
    )
    first_name: Name | None = None
    last_name: OptionalName | None = None
    address: Address | None = None


# -- responses (documentation; the routes render JSON directly) ------------------------------
class Failure(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "Balance is not enough"}]}
    )
    message: str


class UserResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "bc1c823e-b0fb-4b20-88c0-dff25e283252",
                    "first_name": "Guntur",
                    "last_name": "Saputro",
                    "phone_number": "0811255501",
                    "address": "Jl. Kebon Sirih No. 1",
                    "created_date": "2021-04-01 22:20:11",
                }
            ]
        }
    )
    user_id: str
    first_name: str
    last_name: str
    phone_number: str
    address: str
    created_date: str


class TokensResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOi...",
                    "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOi...",
                }
            ]
        }
    )
    access_token: str
    refresh_token: str


class LogoutResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"sessions_ended": 1}]})
    sessions_ended: int


class TopUpResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "top_up_id": "201ddde1-f797-484b-b1a0-07d1190e790a",
                    "amount_top_up": 500000,
                    "balance_before": 0,
                    "balance_after": 500000,
                    "created_date": "2021-04-01 22:21:21",
                }
            ]
        }
    )
    top_up_id: str
    amount_top_up: int
    balance_before: int
    balance_after: int
    created_date: str


class PaymentResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payment_id": "7fd2a9a6-bd11-4a2d-a36b-1c1fdc1b5e0c",
                    "amount": 100000,
                    "remarks": "Pulsa Telkomsel 100k",
                    "balance_before": 500000,
                    "balance_after": 400000,
                    "created_date": "2021-04-01 22:22:01",
                }
            ]
        }
    )
    payment_id: str
    amount: int
    remarks: str
    balance_before: int
    balance_after: int
    created_date: str


class TransferResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transfer_id": "4c1a7c9e-3e2f-4b1a-8d5e-2a9f7c6b5d43",
                    "amount": 30000,
                    "remarks": "Hadiah Ultah",
                    "balance_before": 400000,
                    "balance_after": 370000,
                    "created_date": "2021-04-01 22:23:20",
                }
            ]
        }
    )
    transfer_id: str
    amount: int
    remarks: str
    balance_before: int
    balance_after: int
    created_date: str


class TransactionItem(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "transfer_id": "4c1a7c9e-3e2f-4b1a-8d5e-2a9f7c6b5d43",
                    "status": "SUCCESS",
                    "user_id": "bc1c823e-b0fb-4b20-88c0-dff25e283252",
                    "transaction_type": "DEBIT",
                    "amount": 30000,
                    "remarks": "Hadiah Ultah",
                    "balance_before": 400000,
                    "balance_after": 370000,
                    "created_date": "2021-04-01 22:23:20",
                }
            ]
        },
    )
    status: str
    user_id: str
    transaction_type: str
    amount: int
    remarks: str
    balance_before: int
    balance_after: int
    created_date: str


class ProfileResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "bc1c823e-b0fb-4b20-88c0-dff25e283252",
                    "first_name": "Tom",
                    "last_name": "Araya",
                    "address": "Jl. Diponegoro No. 215",
                    "updated_date": "2021-04-01 23:00:20",
                }
            ]
        }
    )
    user_id: str
    first_name: str
    last_name: str
    address: str
    updated_date: str


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    status: str = "SUCCESS"
    result: T
