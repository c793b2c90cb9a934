"""Stored JSON (models.JSONField): a notification's variables and audit details read back as they
were written, whatever mail put in them — through orjson, and the stdlib where orjson refuses."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from escalate.store.models import JSONField, dump_json, load_json

FIELD = JSONField()


@pytest.mark.parametrize("value", [
    {"ticket": {"ref": "T-1", "subject": "Störung — 故障", "tier": None}, "history": [{"at": "x", "rule": None}]},
    # what surrogateescape makes of undecodable bytes in a mail: orjson refuses it, the stdlib escapes it
    {"text": "caf\udce9 au lait"},
    {"big": 2 ** 70, "small": -(2 ** 70)},
    [["2026-11-02T09:00:00+00:00", "2026-11-02T09:30:00+00:00"]],
    {"nested": {"b": [1, 2.5, True, None], "a": "\x00\n\"quoted\""}},
])
def test_values_read_back_as_written(value):
    assert FIELD.python_value(FIELD.db_value(value)) == value


def test_keys_are_sorted_so_equal_values_store_equal_text():
    assert dump_json({"b": 1, "a": {"d": 2, "c": 3}}) == dump_json({"a": {"c": 3, "d": 2}, "b": 1})
    assert list(json.loads(dump_json({"b": 1, "a": 2}))) == ["a", "b"]


def test_a_value_json_has_no_form_for_fails_instead_of_being_stored_as_text():
    with pytest.raises(TypeError, match="datetime"):
        dump_json({"due_at": datetime(2026, 11, 2, tzinfo=timezone.utc)})
    with pytest.raises(TypeError):
        dump_json({"raw": object()})


def test_text_the_stdlib_wrote_still_reads():
    assert load_json('{"a": NaN, "b": [1, 2]}')["b"] == [1, 2]
    assert load_json(json.dumps({"t": "caf\udce9"})) == {"t": "caf\udce9"}
    assert load_json(json.JSONEncoder(sort_keys=True).encode({"x": "é"})) == {"x": "é"}
