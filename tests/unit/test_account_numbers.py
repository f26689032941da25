"""no_rekening: format, Damm check digit, randomness; and the /daftar field rules."""

from __future__ import annotations

import itertools

import pytest

from dompet.domain.errors import InvalidInput, UnknownAccountNumber
from dompet.domain.savings import (
    check_account_number,
    check_new_customer,
    damm_digit,
    is_valid_account_number,
    new_account_number,
)

# Fixed numbers (valid by construction below) plus freshly drawn ones.
FIXED_BODIES = ["100000000", "123456789", "987654321", "909090909", "555555555", "190827364"]


def with_check_digit(body: str) -> str:
    return body + str(damm_digit(body))


def single_digit_errors(number: str) -> list[str]:
    return [
        number[:i] + d + number[i + 1 :]
        for i in range(len(number))
        for d in "0123456789"
        if d != number[i]
    ]


def adjacent_transpositions(number: str) -> list[str]:
    return [
        number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        for i in range(len(number) - 1)
        if number[i] != number[i + 1]
    ]


def test_damm_reference_values() -> None:
    # The worked example of the algorithm: 572 gets check digit 4, and 5724 checks out.
    assert damm_digit("572") == 4
    assert damm_digit("5724") == 0
    assert damm_digit("5274") != 0


def test_new_numbers_have_the_format_and_a_valid_check_digit() -> None:
    for _ in range(500):
        number = new_account_number()
        assert len(number) == 10
        assert number.isascii()
        assert number.isdigit()
        assert number[0] != "0"
        assert is_valid_account_number(number)
        assert damm_digit(number[:9]) == int(number[9])


@pytest.mark.parametrize(
    "number",
    [with_check_digit(b) for b in FIXED_BODIES] + [new_account_number() for _ in range(20)],
)
def test_every_single_digit_error_is_caught(number: str) -> None:
    assert is_valid_account_number(number)
    typos = single_digit_errors(number)
    assert len(typos) == 90
    assert not [t for t in typos if is_valid_account_number(t)]


@pytest.mark.parametrize(
    "number",
    [with_check_digit(b) for b in FIXED_BODIES] + [new_account_number() for _ in range(20)],
)
def test_every_adjacent_transposition_is_caught(number: str) -> None:
    swaps = adjacent_transpositions(number)
    assert not [t for t in swaps if is_valid_account_number(t)]


def test_transpositions_exhaustively_for_every_digit_pair_at_every_position() -> None:
    """Every ab -> ba swap (a != b), at every position, including the check digit's."""
    caught = 0
    for position in range(9):
        for a in "0123456789":
            for b in "0123456789":
                if a == b:
                    continue
                body = list("314159265")
                body[position] = a
                if position + 1 < 9:
                    body[position + 1] = b
                    number = with_check_digit("".join(body))
                else:
                    number = "".join(body)
                    if damm_digit(number) != int(b):
                        continue  # the check digit is fixed by the body; only that b exists
                    number += b
                if number[0] == "0":
                    continue  # not a well-formed number to begin with
                swapped = number[:position] + b + a + number[position + 2 :]
                assert not is_valid_account_number(swapped), (number, swapped)
                caught += 1
    assert caught > 600


def test_numbers_are_random_not_sequential() -> None:
    drawn = [new_account_number() for _ in range(300)]
    assert len(set(drawn)) == len(drawn)
    steps = {int(b[:9]) - int(a[:9]) for a, b in itertools.pairwise(drawn)}
    assert len(steps) > 250  # no constant (or few) increments
    assert {n[0] for n in drawn} == set("123456789")
    for position in range(1, 9):
        assert len({n[position] for n in drawn}) == 10


@pytest.mark.parametrize(
    "value",
    ["", "123456789", "12345678901", "0123456789", "12345abcde", "١٢٣٤٥٦٧٨٩٠", " 123456789"],
)
def test_malformed_numbers_are_invalid_input(value: str) -> None:
    assert not is_valid_account_number(value)
    with pytest.raises(InvalidInput) as raised:
        check_account_number(value)
    assert raised.value.field == "no_rekening"


def test_a_wrong_check_digit_is_an_unknown_number() -> None:
    number = with_check_digit("123456789")
    assert check_account_number(number) == number
    wrong = number[:9] + str((int(number[9]) + 1) % 10)
    with pytest.raises(UnknownAccountNumber):
        check_account_number(wrong)


# -- /daftar fields ----------------------------------------------------------------------------
def test_a_valid_customer_is_cleaned() -> None:
    new = check_new_customer("  Siti Aminah ", "3171234567890001", "+62811255501")
    assert (new.nama, new.nik, new.no_hp) == ("Siti Aminah", "3171234567890001", "0811255501")


@pytest.mark.parametrize(
    ("nama", "nik", "no_hp", "field"),
    [
        ("", "3171234567890001", "0811255501", "nama"),
        ("   ", "3171234567890001", "0811255501", "nama"),
        ("x" * 101, "3171234567890001", "0811255501", "nama"),
        ("Siti", "317123456789000", "0811255501", "nik"),
        ("Siti", "31712345678900012", "0811255501", "nik"),
        ("Siti", "31712345678900ab", "0811255501", "nik"),
        ("Siti", "٣١٧١٢٣٤٥٦٧٨٩٠٠٠١", "0811255501", "nik"),
        ("Siti", "", "0811255501", "nik"),
        ("Siti", "3171234567890001", "0711255501", "no_hp"),
        ("Siti", "3171234567890001", "", "no_hp"),
        ("Siti", "3171234567890001", "08112", "no_hp"),
    ],
)
def test_invalid_customer_fields_are_named(nama: str, nik: str, no_hp: str, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_new_customer(nama, nik, no_hp)
    assert raised.value.field == field
    assert field in raised.value.message


def test_a_hundred_character_nama_is_fine() -> None:
    assert check_new_customer("x" * 100, "3171234567890001", "0811255501").nama == "x" * 100
