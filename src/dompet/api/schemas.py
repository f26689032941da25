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

Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, examples=[500000])]
Name = Annotated[Text, Field(min_length=1, max_length=100), AfterValidator(_not_blank)]
OptionalName = Annotated[Text, Field(max_length=100)]
Address = Annotated[Text, Field(max_length=500)]
Remarks = Annotated[Text, Field(max_length=500)]
Phone = Annotated[Text, Field(min_length=1, max_length=20), AfterValidator(_not_blank)]
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
    phone_number: Phone
    address: Address = ""
    pin: Pin


class LoginRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone_number": "0811255501", "pin": "123456"}]}
    )
    phone_number: Phone
    pin: Annotated[Text, Field(min_length=1, max_length=64)]


class RefreshRequest(Strict):
    refresh_token: Token


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
    message: str


class UserResult(BaseModel):
    user_id: str
    first_name: str
    last_name: str
    phone_number: str
    address: str
    created_date: str


class TokensResult(BaseModel):
    access_token: str
    refresh_token: str


class TopUpResult(BaseModel):
    top_up_id: str
    amount_top_up: int
    balance_before: int
    balance_after: int
    created_date: str


class PaymentResult(BaseModel):
    payment_id: str
    amount: int
    remarks: str
    balance_before: int
    balance_after: int
    created_date: str


class TransferResult(BaseModel):
    transfer_id: str
    amount: int
    remarks: str
    balance_before: int
    balance_after: int
    created_date: str


class TransactionItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    user_id: str
    transaction_type: str
    amount: int
    remarks: str
    balance_before: int
    balance_after: int
    created_date: str


class ProfileResult(BaseModel):
    user_id: str
    first_name: str
    last_name: str
    address: str
    updated_date: str


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    status: str = "SUCCESS"
    result: T
