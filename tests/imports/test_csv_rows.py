"""Reading import files: rows with problems are kept (and refused), bad files are 400 problems."""

from __future__ import annotations

import pytest

from app.imports.csv_rows import FileRejected, RowIn, parse
from app.imports.models import Wish


def test_rows_are_read_by_header_name_in_any_order_and_case() -> None:
    data = (
        "\ufeffNote,Wish,Login Name,Encoded_Account_Id,crm_id\r\n"
        ",,jack_box01,,17\r\n"
        "\r\n"
        '"signed, sealed",billing-approved,,a07e1lxqqqo0,18\r\n'
        ",APPROVED,,a08e1izvh8t9,19\r\n"
    ).encode()

    assert parse(data, max_rows=10) == [
        RowIn(2, None, "jack_box01", None, None),
        RowIn(4, "a07e1lxqqqo0", None, Wish.BILLING_APPROVED, "signed, sealed"),
        RowIn(5, "a08e1izvh8t9", None, Wish.APPROVED, None),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (",,,why", "needs an encoded_account_id or a login_name"),
        ("bad id!,,,", "encoded_account_id must be"),
        ("a0x,,maybe,", "wish must be approved or billing_approved"),
        ("a0x,,billing_approved,", "billing_approved needs a note"),
        (f",{'n' * 201},,", "login_name must be at most 200"),
    ],
)
def test_a_row_that_breaks_a_rule_is_kept_with_its_problem(line: str, problem: str) -> None:
    data = f"encoded_account_id,login_name,wish,note\n{line}\na0ok,,,\n".encode()

    first, second = parse(data, max_rows=10)

    assert first.problem is not None
    assert problem in first.problem
    assert second.problem is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"name,email\nx,y\n", "must name 'encoded_account_id' or 'login_name'"),
        (b"login_name,login_name\nx,y\n", "names 'login_name' twice"),
        (b"login_name\n", "no rows"),
        (b"\xff\xfe\x00l", "not UTF-8"),
        (b"login_name\na\nb\nc\n", "more than 2 rows"),
        (b'login_name\n"unterminated\n', "not valid CSV"),
    ],
)
def test_a_file_that_is_not_an_import_is_rejected_with_why(data: bytes, message: str) -> None:
    with pytest.raises(FileRejected) as caught:
        parse(data, max_rows=2)
    assert message in caught.value.detail
