"""Opaque cursors for keyset pagination: stable while rows are added,
unlike offsets. A cursor encodes the sort key of the last row returned."""
from __future__ import annotations

import base64
import json

from sqlalchemy import and_, or_

from common.errors import ValidationError


def encode(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


MAX_ID = 2 ** 63 - 1


def _fits(value, kind: type) -> bool:
    if kind is int:
        return type(value) is int and 0 <= value <= MAX_ID
    if type(value) is not str or len(value) > 64:
        return False
    try:
        value.encode("utf-8")  # refuses lone surrogates
        return True
    except UnicodeEncodeError:
        return False


def decode(cursor: str | None, kinds: tuple[type, ...]) -> list | None:
    """The sort key in ``cursor``: one value per column, of the given types."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError, RecursionError):
        values = None
    if (not isinstance(values, list) or len(values) != len(kinds)
            or not all(_fits(v, k) for v, k in zip(values, kinds))):
        raise ValidationError("cursor is not one this API returned", field="cursor")
    return values


def after(columns: list, values: list):
    """Rows after ``values`` in descending order of ``columns`` (all of one type
    each): (c1 < v1) or (c1 = v1 and c2 < v2) or ..."""
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal, column < values[i]))
    return or_(*clauses)
