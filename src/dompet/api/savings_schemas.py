"""Request and response models of the savings ("Tabungan") API (strict, no unknown fields).

Content rules (nik is 16 digits, no_hp a mobile number, no_rekening 10 digits with a check
digit ...) are checked by the domain, which words the remark; the models check types and shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from dompet.api.schemas import Shown, Strict, Text
from dompet.domain.money import MAX_AMOUNT


def _account_number(value: Any) -> str:
    """A no_rekening as a string; a JSON integer is accepted too (never a bool or a float)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PydanticCustomError(
        "no_rekening_type", "must be a string of 10 digits (or a JSON integer)"
    )


NoRekening = Annotated[
    str,
    PlainValidator(_account_number),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[1-9][0-9]{9}$"},
                {"type": "integer", "minimum": 1000000000, "maximum": 9999999999},
            ],
            "description": "10 digits, not starting with 0, the last one a Damm check digit",
            "examples": ["5410990314"],
        }
    ),
]
Nominal = Annotated[
    StrictInt,
    Field(gt=0, le=MAX_AMOUNT, description="Whole Rupiah, 1 to 10^12", examples=[100000]),
]


class DaftarRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"nama": "Siti Aminah", "nik": "3171234567890001", "no_hp": "0811255501"}]
        }
    )
    nama: Annotated[
        Shown, Field(json_schema_extra={"minLength": 1, "maxLength": 100}, examples=["Siti"])
    ]
    nik: Annotated[
        Text,
        Field(
            description="Nomor Induk Kependudukan: exactly 16 digits",
            json_schema_extra={"pattern": "^[0-9]{16}$"},
            examples=["3171234567890001"],
        ),
    ]
    no_hp: Annotated[
        Text,
        Field(
            description="Indonesian mobile number: 08..., 628... or +628... (stored as 08...)",
            json_schema_extra={"pattern": r"^(\+62|62|0)8[0-9]{8,11}$"},
            examples=["0811255501"],
        ),
    ]


class MoneyRequest(Strict):
    """The body of /tabung and /tarik."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"no_rekening": "5410990314", "nominal": 100000}]}
    )
    no_rekening: NoRekening
    nominal: Nominal


# -- responses (documentation; the routes render JSON directly) ------------------------------
class Remark(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"remark": "saldo tidak cukup (balance is not enough)"}]}
    )
    remark: str


class DaftarResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"no_rekening": "5410990314"}]})
    no_rekening: str


class SaldoResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"saldo": 150000}]})
    saldo: int


class MutasiItem(BaseModel):
    waktu: str = Field(description="ISO 8601 with UTC offset, e.g. 2021-04-01T22:23:20+07:00")
    kode_transaksi: str = Field(description="C: tabung (credit), D: tarik (debit)")
    nominal: int


class MutasiResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mutasi": [
                        {
                            "waktu": "2021-04-01T22:23:20+07:00",
                            "kode_transaksi": "C",
                            "nominal": 250000,
                        },
                        {
                            "waktu": "2021-04-01T22:30:02+07:00",
                            "kode_transaksi": "D",
                            "nominal": 100000,
                        },
                    ]
                }
            ]
        }
    )
    mutasi: list[MutasiItem]
