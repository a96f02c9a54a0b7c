"""Settings are checked in one place, all at once, with messages naming each bad one."""
from __future__ import annotations

import logging

import pytest

from bq_etl.config import ExportConfig, defaults_from_environment, mask_secrets
from bq_etl.errors import ConfigError
from bq_etl.logs import event

GOOD = {
    **defaults_from_environment({}),
    "ETL_SYNC_BUCKET": "clinic-etl-sync",
    "SQLALCHEMY_DATABASE_URI": "sqlite://",
    "ETL_EXPORT_MODULES": "clinic.exports",
}


def test_good_settings_come_back_typed():
    config = ExportConfig.from_mapping({**GOOD, "ETL_SHARD_RETRIES": "5", "ETL_SHARD_RETRY_INTERVALS": "1, 10"})

    assert config.bucket == "clinic-etl-sync"
    assert config.dataset == "events_join_data"
    assert config.shard_retries == 5
    assert config.shard_retry_intervals == (1, 10)
    assert config.export_modules == ("clinic.exports",)


def test_no_export_module_is_assumed():
    assert defaults_from_environment({})["ETL_EXPORT_MODULES"] is None
    with pytest.raises(ConfigError, match="ETL_EXPORT_MODULES names no module"):
        ExportConfig.from_mapping({**GOOD, "ETL_EXPORT_MODULES": None})


def test_every_problem_is_named_in_one_error():
    with pytest.raises(ConfigError) as error:
        ExportConfig.from_mapping({**GOOD, "ETL_SYNC_BUCKET": "", "ETL_BQ_DATASET": "my-dataset",
                                   "REDIS_URL": "http://localhost", "ETL_SHARD_RETRIES": "many"})

    assert str(error.value) == (
        "bq-etl is not configured: ETL_SYNC_BUCKET is not set; "
        "ETL_BQ_DATASET 'my-dataset' may hold only letters, digits and underscores; "
        "REDIS_URL 'http://localhost' must start with redis://, rediss:// or unix://; "
        "ETL_SHARD_RETRIES must be a whole number, got 'many'"
    )


@pytest.mark.parametrize("bucket", ["Upper", "a", "-leading-dash", "has space"])
def test_an_invalid_bucket_name_is_refused(bucket):
    with pytest.raises(ConfigError, match=f"ETL_SYNC_BUCKET '{bucket}' is not a valid Cloud Storage bucket name"):
        ExportConfig.from_mapping({**GOOD, "ETL_SYNC_BUCKET": bucket})


def test_a_bucket_given_as_a_gs_uri_is_refused_saying_to_drop_the_prefix():
    with pytest.raises(ConfigError) as error:
        ExportConfig.from_mapping({**GOOD, "ETL_SYNC_BUCKET": "gs://my-bucket"})

    assert str(error.value) == ("bq-etl is not configured: ETL_SYNC_BUCKET 'gs://my-bucket' is not a valid Cloud "
                                "Storage bucket name (the name alone: drop the gs:// prefix, 'my-bucket')")


def test_an_out_of_range_number_is_refused():
    with pytest.raises(ConfigError, match="ETL_GZIP_LEVEL must be between 0 and 9, got 11"):
        ExportConfig.from_mapping({**GOOD, "ETL_GZIP_LEVEL": 11})


def test_environment_variables_override_the_defaults():
    values = defaults_from_environment({"ETL_SYNC_BUCKET": "from-env", "ETL_QUEUE": "exports"})

    assert values["ETL_SYNC_BUCKET"] == "from-env"
    assert values["ETL_QUEUE"] == "exports"
    assert values["ETL_BQ_DATASET"] == "events_join_data"


def test_a_sweep_that_could_catch_a_live_run_is_refused():
    settings = {**GOOD, "ETL_SHARD_TIMEOUT": 600, "ETL_SHARD_RETRIES": 2, "ETL_SHARD_RETRY_INTERVALS": "5,30",
                "ETL_LOCK_WAIT": 300, "ETL_LOAD_TIMEOUT": 900}

    assert ExportConfig.from_mapping({**settings, "ETL_SWEEP_AFTER": 3036}).sweep_after == 3036
    with pytest.raises(ConfigError, match=r"ETL_SWEEP_AFTER must be more than the longest a run can take by its "
                                          r"timeouts \(.*= 3035 s\), got 3035"):
        ExportConfig.from_mapping({**settings, "ETL_SWEEP_AFTER": 3035})


@pytest.mark.parametrize("text, shown", [
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("REDIS_URL 'rediss://user:s3cret@cache/2' does not answer", "REDIS_URL 'rediss://user:***@cache/2' does not answer"),
    ("postgresql+psycopg://app:p@ss:w0rd@db:5432/clinic", "postgresql+psycopg://app:***@db:5432/clinic"),
    ("redis://cache:6379/0 and mysql+pymysql://root@db/x", "redis://cache:6379/0 and mysql+pymysql://root@db/x"),
    ("http://127.0.0.1:9050", "http://127.0.0.1:9050"),
])
def test_passwords_in_urls_are_masked(text, shown):
    assert mask_secrets(text) == shown


def test_a_setting_error_shows_no_password():
    with pytest.raises(ConfigError) as error:
        ExportConfig.from_mapping({**GOOD, "REDIS_URL": "http://:s3cret@cache/0"})

    assert "s3cret" not in str(error.value)
    assert "REDIS_URL 'http://:***@cache/0' must start with redis://" in str(error.value)


def test_log_lines_show_no_password(caplog):
    event(logging.ERROR, "could not connect", url="redis://:s3cret@cache:6379/0", error="to redis://u:s3cret@h")

    [record] = caplog.records
    assert record.getMessage() == "could not connect url=redis://:***@cache:6379/0 error=to redis://u:***@h"
    assert record.bq_etl_url == "redis://:***@cache:6379/0"


@pytest.mark.export_modules("api.tests.broken")
def test_a_malformed_schema_file_stops_every_command_naming_the_file(app, redis):
    from bq_etl.extension import state

    runner = app.test_cli_runner()
    for args in (["list"], ["schedule", "midnight"], ["run", "members", "--enqueue"]):
        result = runner.invoke(args=["export", *args])

        assert result.exit_code == 1, (args, result.output)
        [line] = result.output.splitlines()
        assert line.startswith("Error: schema file ") and "api/tests/broken/schemas/broken.json: invalid JSON" in line
    assert state().queue.count == 0


@pytest.mark.export_modules("api.tests.unwritten_schema")
def test_a_missing_schema_file_says_which_command_writes_it(app, redis):
    runner = app.test_cli_runner()

    result = runner.invoke(args=["export", "list"])

    assert result.exit_code == 1, result.output
    [line] = result.output.splitlines()
    assert line.startswith("Error: table 'unwritten_tracks': schema file ")
    assert line.endswith("api/tests/schemas/unwritten_tracks.json: not found; write it from the query with "
                         "`flask export schema generate unwritten_tracks`")
    generated = runner.invoke(args=["export", "schema", "generate", "unwritten_tracks", "--stdout"])
    assert generated.exit_code == 0, generated.output
    assert '"name": "id", "type": "INTEGER", "mode": "REQUIRED"' in generated.output
