"""JSON column values parsed by orjson where it gives what `json.loads` gives, and by
`json.loads` where it might not."""
from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa

from api.db import db
from bq_etl import json_values
from bq_etl.json_values import fast_json, loads

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

TEXTS = [
    '{"a": 1, "a": 2}', '[1.7976931348623157e308, 5e-324, -0.0, 0.1, 1E2]', '"\\u00e9\\ud83d\\ude00"',
    "9223372036854775807", "-9223372036854775808", "18446744073709551615", "1234567890123456789",
    '{"nested": [[[]], {}], "t": true, "f": false, "n": null}', '"id 12345678901234567890123"',
    "1.000000000000000000001", " [ 1 , 2 ] ",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_json_text_reads_as_json_loads_reads_it(text):
    value = loads(text.encode())

    assert value == json.loads(text)
    assert json.dumps(value) == json.dumps(json.loads(text))  # types too: 100.0 is not 100


@pytest.mark.parametrize("text, expected", [
    ("123456789012345678901234567890", 123456789012345678901234567890),  # orjson: a rounded float
    ("18446744073709551616", 18446744073709551616),
    ("-9223372036854775809", -9223372036854775809),
])
def test_an_integer_beyond_64_bits_stays_an_exact_int_for_the_encoder_to_refuse(text, expected):
    assert loads(memoryview(text.encode())) == expected
    assert type(loads(text)) is int


def test_what_orjson_rejects_reads_as_json_loads_reads_it():
    assert loads(b"1e400") == math.inf
    assert loads(b'"\\ud800"') == "\ud800"
    with pytest.raises(json.JSONDecodeError):
        loads(b"{not json")


@on_postgresql
def test_only_the_blocks_cursors_parse_with_it_and_the_pooled_connection_keeps_its_parser(app, monkeypatch):
    parsed = []
    monkeypatch.setattr(json_values, "loads", lambda data: parsed.append(bytes(data)) or json_values.orjson.loads(data))
    connection = db.session.connection()
    doc = sa.text("SELECT CAST('[1, 0.5]' AS jsonb), CAST('{\"a\": 2}' AS json)")

    with fast_json(connection):
        inside = connection.execute(doc).one()
    outside = connection.execute(doc).one()

    assert tuple(inside) == tuple(outside) == ([1, 0.5], {"a": 2})
    assert parsed == [b"[1, 0.5]", b'{"a": 2}']  # the block's query only


def test_an_apps_own_json_deserializer_is_kept(database_urls):
    own = []
    engine = sa.create_engine(database_urls["postgresql"], json_deserializer=lambda text: own.append(text) or "own")
    try:
        with engine.connect() as connection, fast_json(connection):
            value = connection.execute(sa.text("SELECT CAST('[1]' AS jsonb)")).scalar_one()
    finally:
        engine.dispose()

    assert (value, own) == ("own", [b"[1]"])
