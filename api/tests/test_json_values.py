"""JSON column values parsed by orjson where it gives what `json.loads` gives, and by
`json.loads` where it might not."""
from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa

from api.db import db
from bq_etl import json_values
from bq_etl.json_values import CheckedJSON, InexactFloat, column_value, fast_json, is_exact_float, loads

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


# --- JSON numbers a float64 cannot hold ----------------------------------------------------------

@pytest.mark.parametrize("text, number", [
    ("1e-400", "1e-400"),  # below the smallest double: 0.0
    ("[2.4e-324]", "2.4e-324"),  # below half the smallest subnormal: 0.0
    ('{"pi": 3.141592653589793238462643383279}', "3.141592653589793238462643383279"),
    ("[12345678901234567890.5]", "12345678901234567890.5"),
    ("[1.00000000000000001]", "1.00000000000000001"),  # 18 significant digits: 1.0
    ("0.1000000000000000055511151231257827", "0.1000000000000000055511151231257827"),  # 0.1's double, more digits
    ("[1e400]", "1e400"),  # beyond the largest double: inf
])
def test_a_number_no_float64_holds_exactly_reads_as_the_float_keeping_its_text(text, number):
    value = loads(text)
    inner = value if isinstance(value, float) else (value[0] if isinstance(value, list) else value["pi"])

    assert type(inner) is InexactFloat
    assert inner.text == number
    assert value == json.loads(text)  # to code reading it, the float json.loads gives


@pytest.mark.parametrize("text", [
    "0.1", "1.10", "1e2", "1E+2", "5e-324", "-0.0", "1.7976931348623157e308", "0.30000000000000004",
    "123456789.12345678", "2.5e-5", "0e0",
])
def test_a_number_a_float64_holds_exactly_reads_as_a_plain_float(text):
    for data in (text, f"[{text}]"):  # orjson's path and json.loads' path
        value = loads(data)
        number = value[0] if isinstance(value, list) else value
        assert type(number) is float
        assert math.copysign(1, number) == math.copysign(1, json.loads(text)) and number == json.loads(text)
    assert is_exact_float(text)


@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [0.5, -2.25], "c": "x"}', '{"id": "3e4f9a2b-1e5c-4d2e-9e0f-7a1b2c3d4e5f"}',
    '{"n": 12345678901234.5}', '"2024-01-01T10:00:00.123456Z"', "[1234567890123456]",
])
def test_a_column_text_without_long_numbers_or_exponents_is_vouched_for(text):
    assert type(column_value(text.encode())) is CheckedJSON


@pytest.mark.parametrize("text", [
    "[1e2]", '{"a": -2.5E-3}', " 1e5", "[1234567890.1234567]", "[123456789012345.6]", "[0.30000000000000004]", '"x 1e5"',
    "[12345678901234567890]",
])
def test_a_column_text_with_a_long_number_or_an_exponent_is_parsed_for_the_encoders_walk(text):
    value = column_value(text.encode())

    assert type(value) is not CheckedJSON
    assert value == json.loads(text)
