"""RecordEncoder: records in, NDJSON lines out, per shared/BIGQUERY-JSON.md; misfits refused by name."""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.cloud.bigquery import SchemaField

from bq_etl.errors import RecordError, SchemaError
from bq_etl.json_values import JSON_NULL, InexactFloat, loads
from bq_etl.serialize import REQUIRED_NULL, RecordEncoder

ID = SchemaField("id", "INTEGER", "REQUIRED")
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5))


def encode(field: SchemaField, value: Any, zone=timezone.utc) -> bytes:
    """The line for row 7 of table `visits` with `value` in `field`."""
    return RecordEncoder("visits", [ID, field], "id", zone).encode({"id": 7, field.name: value})


def refusal(
    field: SchemaField, value: Any, expected: str, column: str | None = None, zone=timezone.utc,
) -> RecordError:
    """The RecordError for `value` in `field` of row 7, after checking it names table, key, column, type."""
    column = column or field.name
    with pytest.raises(RecordError) as caught:
        encode(field, value, zone)
    error = caught.value
    assert (error.table, error.key, error.column, error.expected) == ("visits", 7, column, expected)
    assert str(error).startswith(f"table 'visits', row key 7, column {column!r}: got ")
    assert f"expected {expected}" in str(error)
    return error


# --- lines ---------------------------------------------------------------------------------------

def test_a_record_becomes_one_json_line_in_schema_order():
    schema = [ID, SchemaField("reason", "STRING"), SchemaField("weight", "FLOAT"), SchemaField("paid", "BOOLEAN")]

    line = RecordEncoder("visits", schema, "id").encode({"paid": True, "weight": 71.5, "reason": "checkup", "id": 1})

    assert line == b'{"id":1,"reason":"checkup","weight":71.5,"paid":true}\n'


def test_null_is_left_out_of_the_line():
    assert encode(SchemaField("reason", "STRING"), None) == b'{"id":7}\n'


def test_a_missing_nullable_column_is_left_out_of_the_line():
    encoder = RecordEncoder("visits", [ID, SchemaField("reason", "STRING")], "id")

    assert encoder.encode({"id": 7}) == b'{"id":7}\n'


def test_null_in_a_required_column_is_refused():
    error = refusal(SchemaField("reason", "STRING", "REQUIRED"), None, expected="STRING")

    assert error.value is None
    assert error.reason == REQUIRED_NULL
    assert str(error) == (
        "table 'visits', row key 7, column 'reason': got NoneType None, expected STRING: the field is REQUIRED in "
        "the schema file; make it NULLABLE there, or leave out or COALESCE the NULLs in the query")


def test_a_missing_required_column_is_refused():
    encoder = RecordEncoder("visits", [ID, SchemaField("reason", "STRING", "REQUIRED")], "id")

    with pytest.raises(RecordError) as caught:
        encoder.encode({"id": 7})

    error = caught.value
    assert (error.table, error.key, error.column, error.expected) == ("visits", 7, "reason", "STRING")
    assert error.reason == REQUIRED_NULL
    assert str(error).startswith("table 'visits', row key 7, column 'reason': got NoneType None, expected STRING")


def test_a_column_the_schema_does_not_have_is_refused_naming_the_file_and_what_to_do():
    encoder = RecordEncoder("visits", [ID, SchemaField("reason", "STRING")], "id", schema_file="schemas/visits.json")

    with pytest.raises(RecordError) as caught:
        encoder.encode({"id": 7, "reason": "checkup", "notes": "late"})

    error = caught.value
    assert (error.table, error.key, error.column, error.value, error.expected) == ("visits", 7, "notes", "late", None)
    assert str(error) == (
        "table 'visits', row key 7, column 'notes': the column is not in the table's schema file "
        "schemas/visits.json (fields: id, reason); add the field to the schema file, or leave the column out of "
        "the query (or of the records to_record builds) (got str 'late')"
    )


def test_the_row_key_is_the_key_columns_value():
    schema = [SchemaField("visit_uuid", "STRING", "REQUIRED"), SchemaField("weight", "FLOAT")]

    with pytest.raises(RecordError) as caught:
        RecordEncoder("visits", schema, "visit_uuid").encode({"visit_uuid": "v-42", "weight": "heavy"})

    assert caught.value.key == "v-42"
    assert str(caught.value).startswith("table 'visits', row key 'v-42', column 'weight': got str 'heavy'")


def test_a_wrong_python_type_names_the_bigquery_type_and_the_python_type():
    error = refusal(SchemaField("amount", "NUMERIC"), "12.50", expected="NUMERIC")

    assert str(error) == (
        "table 'visits', row key 7, column 'amount': got str '12.50', expected NUMERIC: NUMERIC takes a "
        "Decimal or an int; convert it in the export's query() (a SQL CAST; PostgreSQL money reads as "
        "text: CAST(column AS numeric)) or in to_record"
    )


@pytest.mark.parametrize("field, value, advice", [
    (SchemaField("price", "NUMERIC"), "$12.34", "PostgreSQL money reads as text: CAST(column AS numeric)"),
    (SchemaField("paid", "BOOLEAN"), "1", "PostgreSQL bit(1) reads as text: CAST(column AS integer)"),
    (SchemaField("tags", "STRING"), {"a", "b"}, "a MariaDB SET reads as a set: CAST(column AS CHAR)"),
    (SchemaField("n", "INTEGER"), "12", "convert it in the export's query() (a SQL CAST) or in to_record"),
])
def test_a_wrong_python_type_says_how_to_convert_it(field, value, advice):
    assert advice in refusal(field, value, expected=field.field_type).reason


# --- the encoder's schema ------------------------------------------------------------------------

def test_a_key_column_missing_from_the_schema_is_a_schema_error():
    with pytest.raises(SchemaError, match="key column 'uuid' is not a top-level field"):
        RecordEncoder("visits", [ID], "uuid")


def test_an_unknown_type_in_the_schema_is_a_schema_error():
    with pytest.raises(SchemaError, match="schema of table 'visits': field 'x' has unknown type 'UUID'"):
        RecordEncoder("visits", [ID, SchemaField("x", "UUID")], "id")


def test_standard_sql_type_names_encode_like_legacy_ones():
    schema = [SchemaField("id", "INT64", "REQUIRED"), SchemaField("ok", "BOOL"), SchemaField("w", "FLOAT64")]

    line = RecordEncoder("visits", schema, "id").encode({"id": 1, "ok": 0, "w": 2})

    assert line == b'{"id":1,"ok":false,"w":2.0}\n'


# --- INTEGER -------------------------------------------------------------------------------------

INTEGER = SchemaField("visits_count", "INTEGER")


def test_integer_up_to_2_pow_53_minus_1_is_a_json_number():
    assert encode(INTEGER, 2**53 - 1) == b'{"id":7,"visits_count":9007199254740991}\n'


def test_integer_beyond_2_pow_53_minus_1_is_a_decimal_string():
    assert encode(INTEGER, 2**53 + 1) == b'{"id":7,"visits_count":"9007199254740993"}\n'


def test_negative_integer_beyond_2_pow_53_minus_1_is_a_decimal_string():
    assert encode(INTEGER, -(2**63)) == b'{"id":7,"visits_count":"-9223372036854775808"}\n'


def test_integer_outside_int64_is_refused():
    error = refusal(INTEGER, 2**63, expected="INTEGER")

    assert error.value == 2**63
    assert "outside the INTEGER (int64) range" in str(error)


def test_bool_in_an_integer_column_is_refused():
    assert refusal(INTEGER, True, expected="INTEGER").value is True


def test_float_in_an_integer_column_is_refused():
    assert "got float 1.5" in str(refusal(INTEGER, 1.5, expected="INTEGER"))


# --- FLOAT ---------------------------------------------------------------------------------------

FLOAT = SchemaField("weight", "FLOAT")


def test_float_is_written_shortest_round_trip():
    assert encode(FLOAT, 0.1 + 0.2) == b'{"id":7,"weight":0.30000000000000004}\n'


def test_smallest_subnormal_float_survives():
    assert encode(FLOAT, 5e-324) == b'{"id":7,"weight":5e-324}\n'


def test_negative_zero_float_stays_negative_zero():
    assert encode(FLOAT, -0.0) == b'{"id":7,"weight":-0.0}\n'


def test_int_in_a_float_column_is_written_as_a_float():
    assert encode(FLOAT, 3) == b'{"id":7,"weight":3.0}\n'


def test_int_a_float_would_round_is_refused():
    assert encode(FLOAT, 2**53) == b'{"id":7,"weight":9007199254740992.0}\n'
    error = refusal(FLOAT, 2**53 + 1, expected="FLOAT")

    assert "would be rounded to 9007199254740992.0" in error.reason


@pytest.mark.parametrize(
    ("value", "text"), [(math.nan, b'"NaN"'), (math.inf, b'"Infinity"'), (-math.inf, b'"-Infinity"')],
)
def test_non_finite_floats_are_the_strings_bigquery_reads(value, text):
    assert encode(FLOAT, value) == b'{"id":7,"weight":' + text + b"}\n"


def test_decimal_in_a_float_column_is_refused():
    error = refusal(FLOAT, Decimal("0.1"), expected="FLOAT")

    assert "would be rounded to a binary float" in error.reason


def test_bool_in_a_float_column_is_refused():
    refusal(FLOAT, False, expected="FLOAT")


# --- NUMERIC and BIGNUMERIC ----------------------------------------------------------------------

NUMERIC = SchemaField("amount", "NUMERIC")
BIGNUMERIC = SchemaField("amount", "BIGNUMERIC")
NUMERIC_5_2 = SchemaField("amount", "NUMERIC", precision=5, scale=2)


def test_numeric_is_a_string_of_the_exact_digits():
    assert encode(NUMERIC, Decimal("100.100000000")) == b'{"id":7,"amount":"100.100000000"}\n'


def test_numeric_with_an_exponent_is_written_without_it():
    assert encode(NUMERIC, Decimal("1E+3")) == b'{"id":7,"amount":"1000"}\n'


def test_small_numeric_is_written_without_an_exponent():
    assert encode(NUMERIC, Decimal("-1E-7")) == b'{"id":7,"amount":"-0.0000001"}\n'


def test_int_in_a_numeric_column_is_a_string():
    assert encode(NUMERIC, 12) == b'{"id":7,"amount":"12"}\n'


def test_numeric_trailing_zeros_beyond_nine_places_are_dropped_not_refused():
    assert encode(NUMERIC, Decimal("1.5000000000")) == b'{"id":7,"amount":"1.500000000"}\n'


def test_numeric_with_29_integer_and_9_fractional_digits_is_accepted():
    smallest = Decimal("-99999999999999999999999999999.999999999")

    assert encode(NUMERIC, smallest) == b'{"id":7,"amount":"-99999999999999999999999999999.999999999"}\n'


def test_numeric_with_a_tenth_fractional_digit_is_refused():
    error = refusal(NUMERIC, Decimal("0.0000000001"), expected="NUMERIC")

    assert error.reason == "more than 9 fractional digits would be rounded"


def test_numeric_with_thirty_integer_digits_is_refused():
    error = refusal(NUMERIC, Decimal("1E+29"), expected="NUMERIC")

    assert error.reason == "outside the NUMERIC range"


def test_int_with_thirty_digits_in_a_numeric_column_is_refused():
    assert refusal(NUMERIC, 10**29, expected="NUMERIC").reason == "outside the NUMERIC range"


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_numeric_is_refused(value):
    assert refusal(NUMERIC, value, expected="NUMERIC").reason == "NaN and Infinity are not numbers BigQuery can hold"


def test_float_in_a_numeric_column_is_refused():
    assert refusal(NUMERIC, 0.1, expected="NUMERIC").reason.startswith("a float is not exact; pass a Decimal")


def test_parameterised_numeric_accepts_values_within_its_precision_and_scale():
    assert encode(NUMERIC_5_2, Decimal("-999.99")) == b'{"id":7,"amount":"-999.99"}\n'


def test_parameterised_numeric_refuses_digits_beyond_its_scale():
    error = refusal(NUMERIC_5_2, Decimal("1.234"), expected="NUMERIC(5, 2)")

    assert error.reason == "more than 2 fractional digits would be rounded"


def test_parameterised_numeric_refuses_values_beyond_its_precision():
    error = refusal(NUMERIC_5_2, Decimal("1000"), expected="NUMERIC(5, 2)")

    assert error.reason == "outside the NUMERIC(5, 2) range"


def test_bignumeric_keeps_38_fractional_digits():
    value = Decimal("0." + "1" * 38)

    assert encode(BIGNUMERIC, value) == b'{"id":7,"amount":"0.' + b"1" * 38 + b'"}\n'


def test_bignumeric_with_39_fractional_digits_is_refused():
    error = refusal(BIGNUMERIC, Decimal("1E-39"), expected="BIGNUMERIC")

    assert error.reason == "more than 38 fractional digits would be rounded"


def test_largest_bignumeric_is_accepted():
    largest = "578960446186580977117854925043439539266.34992332820282019728792003956564819967"

    assert encode(BIGNUMERIC, Decimal(largest)) == b'{"id":7,"amount":"' + largest.encode() + b'"}\n'


def test_bignumeric_just_beyond_the_largest_is_refused():
    beyond = Decimal("578960446186580977117854925043439539266.34992332820282019728792003956564819968")

    assert refusal(BIGNUMERIC, beyond, expected="BIGNUMERIC").reason == "outside the BIGNUMERIC range"


def test_smallest_bignumeric_is_accepted():
    smallest = "-578960446186580977117854925043439539266.34992332820282019728792003956564819968"

    assert encode(BIGNUMERIC, Decimal(smallest)) == b'{"id":7,"amount":"' + smallest.encode() + b'"}\n'


def test_bignumeric_nan_is_refused():
    refusal(BIGNUMERIC, Decimal("NaN"), expected="BIGNUMERIC")


# --- BOOLEAN -------------------------------------------------------------------------------------

BOOLEAN = SchemaField("paid", "BOOLEAN")


def test_boolean_is_true_or_false():
    assert encode(BOOLEAN, False) == b'{"id":7,"paid":false}\n'


@pytest.mark.parametrize(("value", "text"), [(1, b"true"), (0, b"false")])
def test_tinyint_one_and_zero_are_booleans(value, text):
    assert encode(BOOLEAN, value) == b'{"id":7,"paid":' + text + b"}\n"


def test_other_ints_in_a_boolean_column_are_refused():
    assert refusal(BOOLEAN, 2, expected="BOOLEAN").reason == "only True/False, or the integers 0 and 1"


def test_string_in_a_boolean_column_is_refused():
    refusal(BOOLEAN, "true", expected="BOOLEAN")


# --- STRING and BYTES ----------------------------------------------------------------------------

STRING = SchemaField("reason", "STRING")
BYTES = SchemaField("scan", "BYTES")


def test_string_is_written_unchanged_without_normalisation_or_trimming():
    line = encode(STRING, " Zoe\u0308 \t")

    assert line == '{"id":7,"reason":" Zoe\u0308 \\t"}\n'.encode()
    assert json.loads(line)["reason"] == " Zoe\u0308 \t"


def test_int_in_a_string_column_is_refused_not_converted():
    assert refusal(STRING, 42, expected="STRING").reason.startswith("no implicit conversion to text")


def test_lone_surrogate_in_a_string_is_refused():
    error = refusal(STRING, "ab\udc80", expected="STRING")

    assert error.reason == "lone surrogate '\\udc80' at index 2 is not valid UTF-8"


def test_string_with_max_length_refuses_longer_values():
    error = refusal(SchemaField("code", "STRING", max_length=3), "ABCD", expected="STRING(3)")

    assert error.reason == "4 characters, more than 3"


def test_bytes_are_standard_base64():
    assert encode(BYTES, b"\x00\xff\xfe") == b'{"id":7,"scan":"AP/+"}\n'


def test_bytearray_is_base64_with_padding():
    assert encode(BYTES, bytearray(b"\x00")) == b'{"id":7,"scan":"AA=="}\n'


def test_memoryview_is_accepted_as_bytes():
    assert encode(BYTES, memoryview(b"ab")) == b'{"id":7,"scan":"YWI="}\n'


def test_string_in_a_bytes_column_is_refused():
    refusal(BYTES, "AA==", expected="BYTES")


# --- TIMESTAMP -----------------------------------------------------------------------------------

TIMESTAMP = SchemaField("seen_at", "TIMESTAMP")


def test_utc_timestamp_has_six_fractional_digits_and_z():
    assert encode(TIMESTAMP, datetime(2024, 5, 1, 12, 30, 1, 120000, tzinfo=timezone.utc)) == (
        b'{"id":7,"seen_at":"2024-05-01T12:30:01.120000Z"}\n'
    )


def test_timestamp_on_a_whole_second_still_has_six_fractional_digits():
    assert encode(TIMESTAMP, datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)) == (
        b'{"id":7,"seen_at":"2024-05-01T12:30:00.000000Z"}\n'
    )


def test_timestamp_with_an_offset_is_converted_to_utc():
    assert encode(TIMESTAMP, datetime(2024, 1, 1, 1, 0, 0, 5, tzinfo=PLUS_TWO)) == (
        b'{"id":7,"seen_at":"2023-12-31T23:00:00.000005Z"}\n'
    )


def test_naive_timestamp_is_read_as_utc_by_default():
    assert encode(TIMESTAMP, datetime(2024, 5, 1, 12, 30)) == b'{"id":7,"seen_at":"2024-05-01T12:30:00.000000Z"}\n'


def test_naive_timestamp_is_read_in_the_declared_zone():
    assert encode(TIMESTAMP, datetime(2024, 5, 1, 22, 30), zone=MINUS_FIVE) == (
        b'{"id":7,"seen_at":"2024-05-02T03:30:00.000000Z"}\n'
    )


def test_naive_timestamp_without_a_declared_zone_is_refused():
    error = refusal(TIMESTAMP, datetime(2024, 5, 1), expected="TIMESTAMP", zone=None)

    assert "no time zone declared" in error.reason


LONDON = ZoneInfo("Europe/London")


def test_naive_timestamp_in_a_zone_with_summer_time_takes_that_days_offset():
    assert encode(TIMESTAMP, datetime(2024, 7, 1, 12, 0), zone=LONDON) == (
        b'{"id":7,"seen_at":"2024-07-01T11:00:00.000000Z"}\n'
    )
    assert encode(TIMESTAMP, datetime(2024, 3, 31, 2, 0), zone=LONDON) == (  # the first minute after the gap
        b'{"id":7,"seen_at":"2024-03-31T01:00:00.000000Z"}\n'
    )


def test_naive_timestamp_the_clocks_skipped_is_refused():
    error = refusal(TIMESTAMP, datetime(2024, 3, 31, 1, 30), expected="TIMESTAMP", zone=LONDON)

    assert error.reason.startswith("2024-03-31 01:30:00 does not exist in Europe/London (the clocks skipped it)")


@pytest.mark.parametrize("fold", [0, 1])
def test_naive_timestamp_the_clocks_showed_twice_is_refused(fold):
    error = refusal(TIMESTAMP, datetime(2024, 10, 27, 1, 30, fold=fold), expected="TIMESTAMP", zone=LONDON)

    assert error.reason.startswith("2024-10-27 01:30:00 occurs twice in Europe/London (the clocks went back)")


def test_an_aware_timestamp_in_the_repeated_hour_is_one_instant():
    second = datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LONDON)

    assert encode(TIMESTAMP, second, zone=LONDON) == b'{"id":7,"seen_at":"2024-10-27T01:30:00.000000Z"}\n'


def test_aware_timestamp_needs_no_declared_zone():
    assert encode(TIMESTAMP, datetime(2024, 5, 1, tzinfo=PLUS_TWO), zone=None) == (
        b'{"id":7,"seen_at":"2024-04-30T22:00:00.000000Z"}\n'
    )


def test_year_one_timestamp_is_written_with_four_digits():
    assert encode(TIMESTAMP, datetime(1, 1, 1, tzinfo=timezone.utc)) == (
        b'{"id":7,"seen_at":"0001-01-01T00:00:00.000000Z"}\n'
    )


def test_timestamp_before_year_one_in_utc_is_refused():
    error = refusal(TIMESTAMP, datetime(1, 1, 1, 0, 30, tzinfo=PLUS_TWO), expected="TIMESTAMP")

    assert error.reason == "in UTC it falls outside years 1 to 9999"


def test_timestamp_after_year_9999_in_utc_is_refused():
    refusal(TIMESTAMP, datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_FIVE), expected="TIMESTAMP")


def test_date_in_a_timestamp_column_is_refused():
    assert refusal(TIMESTAMP, date(2024, 5, 1), expected="TIMESTAMP").reason == "a date has no time of day"


# --- DATETIME, DATE, TIME ------------------------------------------------------------------------

DATETIME = SchemaField("booked_for", "DATETIME")
DATE = SchemaField("born_on", "DATE")
TIME = SchemaField("opens_at", "TIME")


def test_datetime_is_wall_clock_without_offset():
    assert encode(DATETIME, datetime(2024, 5, 1, 9, 15, 0, 7)) == (
        b'{"id":7,"booked_for":"2024-05-01T09:15:00.000007"}\n'
    )


def test_datetime_on_a_whole_second_has_six_fractional_digits():
    assert encode(DATETIME, datetime(2024, 5, 1, 9, 15)) == b'{"id":7,"booked_for":"2024-05-01T09:15:00.000000"}\n'


def test_aware_datetime_in_a_datetime_column_is_refused_not_shifted():
    error = refusal(DATETIME, datetime(2024, 5, 1, 9, 15, tzinfo=PLUS_TWO), expected="DATETIME")

    assert "would have to be shifted" in error.reason


def test_date_in_a_datetime_column_is_refused():
    refusal(DATETIME, date(2024, 5, 1), expected="DATETIME")


def test_date_is_year_month_day():
    assert encode(DATE, date(5, 1, 2)) == b'{"id":7,"born_on":"0005-01-02"}\n'


def test_datetime_in_a_date_column_is_refused():
    assert refusal(DATE, datetime(2024, 5, 1), expected="DATE").reason == "a datetime would lose its time of day"


def test_zero_date_string_in_a_date_column_is_refused():
    refusal(DATE, "0000-00-00", expected="DATE")


def test_time_has_six_fractional_digits():
    assert encode(TIME, time(8, 0)) == b'{"id":7,"opens_at":"08:00:00.000000"}\n'


def test_timedelta_under_a_day_is_a_time():
    value = timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)

    assert encode(TIME, value) == b'{"id":7,"opens_at":"23:59:59.999999"}\n'


@pytest.mark.parametrize("value", [timedelta(hours=24), timedelta(hours=838), timedelta(seconds=-1)])
def test_timedelta_outside_a_day_is_refused(value):
    assert refusal(TIME, value, expected="TIME").reason == "outside 00:00:00 to 23:59:59.999999"


def test_aware_time_is_refused():
    assert refusal(TIME, time(8, 0, tzinfo=PLUS_TWO), expected="TIME").reason == "a TIME column has no time zone"


# --- JSON ----------------------------------------------------------------------------------------

JSON = SchemaField("payload", "JSON")


def test_json_value_is_nested_raw_in_the_line():
    value = {"a": 1, "b": [True, None, "x"], "c": {"d": 1.5}}

    assert encode(JSON, value) == b'{"id":7,"payload":{"a":1,"b":[true,null,"x"],"c":{"d":1.5}}}\n'


def test_json_null_is_written_as_null_apart_from_sql_null_which_is_left_out():
    payload = SchemaField("payload", "JSON")

    assert (encode(payload, JSON_NULL), encode(payload, None)) == (b'{"id":7,"payload":null}\n', b'{"id":7}\n')


def test_json_null_in_a_required_json_column_is_refused():
    error = refusal(SchemaField("payload", "JSON", "REQUIRED"), JSON_NULL, expected="JSON")

    assert "make the column NULLABLE" in error.reason


def test_json_null_outside_a_json_column_is_refused():
    refusal(SchemaField("reason", "STRING"), JSON_NULL, expected="STRING")


def test_json_string_stays_a_json_string():
    assert encode(JSON, '{"a":1}') == b'{"id":7,"payload":"{\\"a\\":1}"}\n'


def test_json_array_at_the_top_is_nested_raw():
    assert encode(JSON, [1, "two", (3,)]) == b'{"id":7,"payload":[1,"two",[3]]}\n'


def test_json_accepts_the_int64_and_uint64_extremes():
    assert encode(JSON, [-(2**63), 2**64 - 1]) == b'{"id":7,"payload":[-9223372036854775808,18446744073709551615]}\n'


def test_json_dict_subclass_is_written_as_an_object():
    assert encode(JSON, OrderedDict(b=1, a=2)) == b'{"id":7,"payload":{"b":1,"a":2}}\n'


def test_json_integer_beyond_uint64_is_refused_with_its_path():
    error = refusal(JSON, {"a": [0, 2**64]}, expected="JSON")

    assert error.value == 2**64
    assert error.reason == "at $.a[1]: integer outside int64/uint64"


def test_json_nan_is_refused_with_its_path():
    error = refusal(JSON, {"score": math.nan}, expected="JSON")

    assert error.reason == "at $.score: NaN and Infinity are not JSON numbers"


def test_json_non_string_key_is_refused():
    assert refusal(JSON, {"a": {1: "x"}}, expected="JSON").reason == "at $.a: object key 1 is not a string"


def test_decimal_inside_json_is_refused():
    error = refusal(JSON, {"amount": Decimal("1.10")}, expected="JSON")

    assert error.reason == "at $.amount: Decimal is not a JSON type"


def test_json_nested_too_deep_is_refused():
    value: Any = 1
    for _ in range(201):
        value = [value]

    assert "nested deeper than 200 levels" in refusal(JSON, value, expected="JSON").reason


def test_json_nested_too_deep_names_the_first_levels_and_how_deep():
    value: Any = []
    for _ in range(300):
        value = {"a": [value]}

    assert refusal(JSON, value, expected="JSON").reason == (
        "at $.a[0].a[0].a[0].a[0]... (200 levels down): nested deeper than 200 levels")


@pytest.mark.parametrize("text, nearest", [
    ("3.141592653589793238462643383279", "3.141592653589793"), ("1e-400", "0.0"), ("1e400", "inf"),
    ("12345678901234567890.5", "1.2345678901234567e+19"),
])
def test_a_json_number_no_float64_holds_exactly_is_refused_with_its_text(text, nearest):
    error = refusal(JSON, {"a": [1, InexactFloat(text)]}, expected="JSON")

    assert error.value == text
    assert error.reason.startswith(
        f"at $.a[1]: JSON number {text} cannot be held exactly by a float64 (it would become {nearest})")


def test_a_json_number_a_float64_holds_is_written_as_its_shortest_repr():
    assert encode(JSON, loads("[1.10, 1e2, 5e-324, -0.0]")) == b'{"id":7,"payload":[1.1,100.0,5e-324,-0.0]}\n'


def test_a_long_json_number_is_named_by_its_exponent():
    text = "0." + "0" * 399 + "1"  # how jsonb writes 1e-400

    assert refusal(JSON, InexactFloat(text), expected="JSON").reason.startswith("at $: JSON number 1e-400 cannot")


def test_a_json_number_no_float64_holds_is_refused_in_a_float_column_too():
    error = refusal(SchemaField("ratio", "FLOAT"), InexactFloat("0.1000000000000000055511151231257827"), expected="FLOAT")

    assert "cannot be held exactly by a float64" in error.reason


# --- REPEATED ------------------------------------------------------------------------------------

TAGS = SchemaField("tags", "STRING", "REPEATED")


def test_repeated_list_is_a_json_array():
    assert encode(TAGS, ["a", "b"]) == b'{"id":7,"tags":["a","b"]}\n'


def test_repeated_tuple_is_a_json_array():
    doses = SchemaField("doses", "NUMERIC", "REPEATED")

    assert encode(doses, (Decimal("1.5"), 2)) == b'{"id":7,"doses":["1.5","2"]}\n'


def test_empty_repeated_is_an_empty_array():
    assert encode(TAGS, []) == b'{"id":7,"tags":[]}\n'


def test_null_repeated_is_left_out():
    assert encode(TAGS, None) == b'{"id":7}\n'


def test_null_element_in_an_array_is_refused_at_its_index():
    error = refusal(TAGS, ["a", None], expected="STRING", column="tags[1]")

    assert error.reason == "BigQuery arrays cannot hold NULL"


def test_array_of_arrays_is_refused():
    error = refusal(TAGS, [["a"]], expected="STRING", column="tags[0]")

    assert error.reason == "BigQuery arrays cannot hold arrays"


def test_wrong_element_type_is_refused_at_its_index():
    assert refusal(TAGS, ["a", "b", 3], expected="STRING", column="tags[2]").value == 3


def test_non_list_in_a_repeated_column_is_refused():
    refusal(TAGS, "a,b", expected="ARRAY<STRING>")


DOCS = SchemaField("docs", "JSON", "REPEATED")


def test_an_array_of_json_holds_json_arrays_and_objects():
    assert encode(DOCS, [[1, 2], {"a": [None]}, "x", 1.5, []]) == (
        b'{"id":7,"docs":[[1,2],{"a":[null]},"x",1.5,[]]}\n'
    )


@pytest.mark.parametrize("null", [None, JSON_NULL])
def test_a_json_null_element_is_refused(null):
    error = refusal(DOCS, [{"a": 1}, null], expected="JSON", column="docs[1]")

    assert error.reason == "BigQuery arrays cannot hold NULL (a JSON null element is read as NULL too)"


def test_a_json_element_is_checked_inside():
    error = refusal(DOCS, [[1], [2, InexactFloat("1e-400")]], expected="JSON", column="docs[1]")

    assert error.reason.startswith("at $[1]: JSON number 1e-400 cannot be held exactly")


def test_a_set_in_a_repeated_column_is_refused_for_its_order():
    assert refusal(TAGS, {"a", "b"}, expected="ARRAY<STRING>").reason.startswith("a set has no order")


# --- RECORD --------------------------------------------------------------------------------------

ORGANIZATION = SchemaField("organization", "RECORD", fields=[
    SchemaField("name", "STRING", "REQUIRED"),
    SchemaField("founded", "DATE"),
])
CARE_TRACKS = SchemaField("care_tracks", "RECORD", "REPEATED", fields=[
    SchemaField("name", "STRING", "REQUIRED"),
    SchemaField("started", "TIMESTAMP"),
])


def test_record_is_a_nested_object_with_nulls_left_out():
    assert encode(ORGANIZATION, {"founded": date(1999, 1, 2), "name": "North"}) == (
        b'{"id":7,"organization":{"name":"North","founded":"1999-01-02"}}\n'
    )


def test_repeated_record_is_an_array_of_objects():
    value = [{"name": "diabetes"}, {"name": "cardio", "started": datetime(2024, 1, 1, tzinfo=timezone.utc)}]

    assert encode(CARE_TRACKS, value) == (
        b'{"id":7,"care_tracks":[{"name":"diabetes"},{"name":"cardio","started":"2024-01-01T00:00:00.000000Z"}]}\n'
    )


def test_required_subfield_missing_is_refused_by_dotted_path():
    error = refusal(ORGANIZATION, {"founded": date(1999, 1, 2)}, expected="STRING", column="organization.name")

    assert error.reason == REQUIRED_NULL


def test_unknown_subfield_is_refused_by_dotted_path():
    value = {"name": "North", "kind": "clinic"}

    with pytest.raises(RecordError) as caught:
        encode(ORGANIZATION, value)

    assert (caught.value.column, caught.value.expected) == ("organization.kind", None)
    assert caught.value.reason.startswith(
        "the column is not in the table's schema file (fields of 'organization': name, founded); add the field")


def test_error_in_a_repeated_record_names_index_and_subfield():
    value = [{"name": "a"}, {"name": "b"}, {"name": 3}]

    assert refusal(CARE_TRACKS, value, expected="STRING", column="care_tracks[2].name").value == 3


def test_non_mapping_in_a_record_column_is_refused():
    refusal(ORGANIZATION, ["North"], expected="RECORD")


def test_datetimes_dates_and_times_nested_in_arrays_and_records_keep_the_canonical_forms():
    schema = [
        SchemaField("seen", "TIMESTAMP", "REPEATED"),
        SchemaField("visit", "RECORD", fields=[
            SchemaField("at", "DATETIME"), SchemaField("on", "DATE"), SchemaField("opens", "TIME"),
            SchemaField("logged", "TIMESTAMP"),
        ]),
    ]
    encoder = RecordEncoder("visits", [SchemaField("id", "INTEGER"), *schema], "id")
    record = {
        "id": 1,
        "seen": [datetime(2024, 1, 1, 0, 0, 0, 5, tzinfo=ZoneInfo("Etc/UTC")), datetime(2024, 1, 1, tzinfo=timezone.utc),
                 datetime(2024, 1, 1, 1, 0, 0, 250000, tzinfo=PLUS_TWO)],
        "visit": {"at": datetime(2024, 2, 3, 4, 5, 6, 7), "on": date(2024, 2, 3), "opens": time(8, 0, 0, 1),
                  "logged": datetime(2024, 2, 3, 4, 5, 6, 999999)},
    }

    assert encoder.encode(record) == (
        b'{"id":1,"seen":["2024-01-01T00:00:00.000005Z","2024-01-01T00:00:00.000000Z","2023-12-31T23:00:00.250000Z"],'
        b'"visit":{"at":"2024-02-03T04:05:06.000007","on":"2024-02-03","opens":"08:00:00.000001",'
        b'"logged":"2024-02-03T04:05:06.999999Z"}}\n'
    )


@pytest.mark.parametrize("kind", ["DATE", "DATETIME", "TIMESTAMP"])
def test_a_mariadb_zero_date_is_refused_with_what_to_do(kind):
    error = refusal(SchemaField("day", kind), "0000-00-00", expected=kind)

    assert error.reason.startswith("MariaDB's zero date: BigQuery has no year 0; store NULL instead")


# --- rows of values (the default records, without a dict each) ----------------------------------

ROW_SCHEMA = [ID, SchemaField("name", "STRING", "REQUIRED"), SchemaField("at", "TIMESTAMP"), SchemaField("n", "NUMERIC")]


def test_a_row_in_any_column_order_gets_the_records_line():
    encoder = RecordEncoder("t", ROW_SCHEMA, "id")
    encode_row = encoder.row_encoder(["n", "at", "id", "name"])
    at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    for row in [(Decimal("1.50"), at, 7, "é"), (None, None, 2**60, "x")]:
        record = dict(zip(["n", "at", "id", "name"], row))
        assert encode_row(row) == encoder.encode(record)


def test_a_refused_row_raises_the_records_error():
    encode_row = RecordEncoder("t", ROW_SCHEMA, "id").row_encoder(["id", "name", "at", "n"])

    with pytest.raises(RecordError) as raised:
        encode_row((7, None, None, None))

    assert (raised.value.key, raised.value.column) == (7, "name")


@pytest.mark.parametrize("keys", [["id", "name", "at"], ["id", "name", "at", "n", "extra"], ["id", "id", "name", "at", "n"]])
def test_rows_not_naming_each_field_once_take_the_records_way(keys):
    assert RecordEncoder("t", ROW_SCHEMA, "id").row_encoder(keys) is None
