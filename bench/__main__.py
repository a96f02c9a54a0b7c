"""`python -m bench` (`make bench`): how fast the exporter turns PostgreSQL and MariaDB rows into
NDJSON, against each database's own JSON and a naive loop, and what a whole run through RQ
workers and the emulators takes. Run `python -m bench --help` for the options."""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time

from .cases import Measurement
from .child import ROOT, run_case
from .report import figure, header, row
from .mariadb import ensure_mariadb_table, mariadb_url
from .table import database_url, ensure_table

# Per process: two bench runs at once must not delete each other's files (their timings will
# still disturb each other). Kept after a failure, for the emulators' and workers' logs.
WORK_DIR = ROOT / ".bench" / f"run-{os.getpid()}"
BIG_ROWS = 5_000_000
GZIP_LEVELS = (1, 6)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows of the table for cases 1 to 3, and the shard size of the memory figures")
    parser.add_argument("--big", action="store_true",
                        help=f"also export a shard of --rows rows from a {BIG_ROWS:,}-row table (peak_mb_5m)")
    parser.add_argument("--e2e-rows", type=int, default=None,
                        help="rows of the table for the end-to-end case (default: --rows)")
    parser.add_argument("--e2e-shards", type=int, default=8, help="shards of the end-to-end run")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end case")
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds of cases 1 to 3, interleaved; the ratios use each case's fastest")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="only profile case 3 and print its top N functions by cumulative time")
    parser.add_argument("--python-path", action="store_true",
                        help="with --profile: profile the Python path (the database's line building off)")
    parser.add_argument("--mariadb", action="store_true", help="with --profile: profile the MariaDB table's export")
    parser.add_argument("--no-mariadb", action="store_true", help="skip the MariaDB cases")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    bench(parse_args(argv))
    shutil.rmtree(WORK_DIR, ignore_errors=True)


def bench(args: argparse.Namespace) -> None:
    """Build or reuse the tables, run the cases and print the report."""
    e2e_rows = args.e2e_rows or args.rows
    started = time.monotonic()
    print(f"bench: {os.cpu_count()} CPUs shared with PostgreSQL, the emulators and anything else "
          f"running; load average {_load()}", flush=True)
    sizes = {args.rows} | ({BIG_ROWS} if args.big else set()) | (set() if args.no_e2e else {e2e_rows})
    for rows in sorted(sizes):
        built = ensure_table(rows)
        print(f"table visits, {rows:,} rows: " + (f"built in {built:.1f} s" if built else "reused"), flush=True)
    if not args.no_mariadb or args.mariadb:
        built = ensure_mariadb_table(args.rows)
        print(f"MariaDB table visits, {args.rows:,} rows: " + (f"copied in {built:.1f} s" if built else "reused"),
              flush=True)

    shard_env = {"DATABASE_URL": database_url(args.rows), "BENCH_SHARD_SIZE": str(args.rows)}
    maria_env = {"DATABASE_URL": mariadb_url(args.rows), "BENCH_SHARD_SIZE": str(args.rows)}
    if args.profile:
        _run("shard", env=maria_env if args.mariadb else shard_env, profile=args.profile,
             python_path=args.python_path, database="mariadb" if args.mariadb else "postgresql")
        return

    print(header(), flush=True)
    # Interleaved rounds, fastest kept: load from other processes only ever slows a case down.
    limit = naive = exporter = python_path = unchecked = None
    maria: dict[str, Measurement | None] = dict.fromkeys(("limit", "naive", "exporter", "python", "unchecked"))
    for round_ in range(1, args.repeat + 1):
        tag = f" [{round_}/{args.repeat}]" if args.repeat > 1 else ""
        limit = _fastest(limit, _case(f"1 limit: psql \\copy row_to_json{tag}", "limit", rows=args.rows))
        limit = _fastest(limit, _case(f"1 limit: psycopg COPY row_to_json{tag}", "copy_limit", rows=args.rows))
        naive = _fastest(naive, _case(f"2 naive: Core + json.dumps{tag}", "naive", rows=args.rows))
        exporter = _fastest(exporter, _case(f"3 exporter, one shard{tag}", "shard", env=shard_env))
        # The Python path beside the loop a user would write with no checks, in the same round.
        python_path = _fastest(python_path, _case(f"3 exporter, one shard, Python path{tag}", "shard",
                                                  env=shard_env, python_path=True))
        unchecked = _fastest(unchecked, _case(f"   unchecked: Core + orjson.dumps{tag}", "unchecked", rows=args.rows))
        if not args.no_mariadb:
            _mariadb_round(maria, args.rows, maria_env, tag)
    unsqlalchemy = _case("   for scale: psycopg + RecordEncoder", "reference", rows=args.rows, encoder=True)
    reference = _case("   for scale: psycopg + orjson, no checks", "reference", rows=args.rows)
    for level in GZIP_LEVELS:
        _case(f"3 exporter, one shard, gzip {level}", "shard", env=shard_env, gzip_level=level)
    big = None
    if args.big:
        big = _case(f"3 exporter, {args.rows:,}-row shard of {BIG_ROWS:,}", "shard",
                    env={"DATABASE_URL": database_url(BIG_ROWS), "BENCH_SHARD_SIZE": str(args.rows)})
    runs: dict[int, Measurement] = {}
    if not args.no_e2e:
        runs, offline = _end_to_end(e2e_rows, args.e2e_shards, args.repeat)
        database = _database_alone(e2e_rows, args.repeat)
        database_speedup = database[0].seconds / database[1].seconds

    print()
    print(f"exporter vs limit {exporter.rows_per_second / limit.rows_per_second:.2f}, "
          f"vs naive {exporter.rows_per_second / naive.rows_per_second:.2f} "
          f"(rows/s ratios, fastest of {args.repeat} rounds each)")
    print(f"Python path vs naive {python_path.rows_per_second / naive.rows_per_second:.2f}, vs the unchecked "
          f"Core + orjson loop {python_path.rows_per_second / unchecked.rows_per_second:.2f} (fastest of "
          f"{args.repeat} rounds); without SQLAlchemy (psycopg + RecordEncoder) "
          f"{unsqlalchemy.rows_per_second / naive.rows_per_second:.2f} x naive; an unchecked psycopg + orjson "
          f"loop {reference.rows_per_second / naive.rows_per_second:.2f} x naive (one round each)")
    if maria["exporter"]:
        print(f"MariaDB: exporter vs limit {_ratio(maria['exporter'], maria['limit']):.2f}, vs naive "
              f"{_ratio(maria['exporter'], maria['naive']):.2f}; Python path vs naive "
              f"{_ratio(maria['python'], maria['naive']):.2f}, vs unchecked {_ratio(maria['python'], maria['unchecked']):.2f}")
    if big:
        print(f"shard worker peak RSS for {args.rows:,}-row shards: {exporter.peak_mb:.0f} MB from the "
              f"{args.rows:,}-row table, {big.peak_mb:.0f} MB from the {BIG_ROWS:,}-row table")
    if runs:
        print(f"end to end ({e2e_rows:,} rows{'' if e2e_rows == args.rows else ', smaller by --e2e-rows'}): "
              f"1 worker {runs[1].seconds:.1f} s, 2 workers {runs[2].seconds:.1f} s, "
              f"speedup {runs[1].seconds / runs[2].seconds:.2f}; of the shard phase alone "
              f"{_shard_speedup(runs):.2f}, of plan and shards {_phase(runs[1]) / _phase(runs[2]):.2f} "
              f"(the load is one job either way: {runs[1].extra['load_seconds']:.1f} s and "
              f"{runs[2].extra['load_seconds']:.1f} s); fastest of {args.repeat} rounds")
        print(f"the database's own speedup with 2 processes (psql \\copy of each half of the table at once) "
              f"{database_speedup:.2f}; the shard phase's into the storage stand-in {_shard_speedup(offline):.2f} "
              f"({offline[1].extra['shards_seconds']:.1f} s and {offline[2].extra['shards_seconds']:.1f} s), "
              f"{_shard_speedup(offline) / database_speedup:.2f} of the database's (scaling/database); into the "
              f"storage emulator {_shard_speedup(runs) / database_speedup:.2f} of it")
        cpus, busy_alone = os.cpu_count() or 1, _cores(database[0].extra["cpu"], database[0].seconds)
        print(f"on {cpus} cores a second process can only use what the first leaves idle: PostgreSQL alone keeps "
              f"{busy_alone:.2f} cores busy (so at most {cpus / busy_alone:.2f}x with two); one worker's plan and "
              f"shards {_busy_one_worker(offline):.2f} into the stand-in (at most {cpus / _busy_one_worker(offline):.2f}x) "
              f"and {_busy_one_worker(runs):.2f} into the storage emulator (at most {cpus / _busy_one_worker(runs):.2f}x, "
              f"so at most {cpus / _busy_one_worker(runs) / database_speedup:.2f} of the database's measured speedup)")
    print(f"wall time {time.monotonic() - started:.0f} s; load average {_load()}")
    print(figure("exporter/limit", exporter.rows_per_second / limit.rows_per_second))
    print(figure("exporter/naive", exporter.rows_per_second / naive.rows_per_second))
    print(figure("python/naive", python_path.rows_per_second / naive.rows_per_second))
    print(figure("python/unchecked", _ratio(python_path, unchecked)))
    if maria["exporter"]:
        print(figure("mariadb_exporter/limit", _ratio(maria["exporter"], maria["limit"])))
        print(figure("mariadb_exporter/naive", _ratio(maria["exporter"], maria["naive"])))
        print(figure("mariadb_python/naive", _ratio(maria["python"], maria["naive"])))
        print(figure("mariadb_python/unchecked", _ratio(maria["python"], maria["unchecked"])))
    if runs:
        print(figure("workers2/workers1", runs[1].seconds / runs[2].seconds))
        print(figure("workers2/workers1_without_load", _phase(runs[1]) / _phase(runs[2])))
        print(figure("scaling/database", _shard_speedup(offline) / database_speedup))
        print(figure("scaling/database_with_emulator", _shard_speedup(runs) / database_speedup))
        print(figure("cores/database_1process", _cores(database[0].extra["cpu"], database[0].seconds)))
        print(figure("cores/shards_1worker", _busy_one_worker(offline)))
        print(figure("cores/shards_1worker_with_emulator", _busy_one_worker(runs)))
        print(figure("peak_mb_e2e", max(run.peak_mb for run in [*runs.values(), *offline.values()]), 0))
    print(figure("peak_mb_1m", exporter.peak_mb, 0))
    if maria["exporter"]:
        print(figure("mariadb_peak_mb_1m", maria["exporter"].peak_mb, 0))
    if big:
        print(figure("peak_mb_5m", big.peak_mb, 0))


def _mariadb_round(best: dict[str, Measurement | None], rows: int, env: dict[str, str], tag: str) -> None:
    """One round of the MariaDB cases, each kept in `best` if it is the fastest so far."""
    for key, label, name, kwargs in (
        ("limit", "M1 MariaDB limit: mariadb JSON_OBJECT", "mariadb_limit", {"rows": rows}),
        ("naive", "M2 MariaDB naive: Core + json.dumps", "naive", {"rows": rows, "database": "mariadb"}),
        ("exporter", "M3 MariaDB exporter, one shard", "shard", {"env": env, "database": "mariadb"}),
        ("python", "M3 MariaDB exporter, Python path", "shard", {"env": env, "database": "mariadb", "python_path": True}),
        ("unchecked", "   MariaDB unchecked: Core + orjson", "unchecked", {"rows": rows, "database": "mariadb"}),
    ):
        best[key] = _fastest(best[key], _case(label + tag, name, **kwargs))


def _database_alone(rows: int, repeat: int) -> tuple[Measurement, Measurement]:
    """PostgreSQL alone on the end-to-end table, for its own speedup with two processes: psql's
    `\\copy` of row_to_json for the whole table, and two at once, one per half (fastest of
    `repeat` rounds each)."""
    one = two = None
    for _ in range(repeat):
        one = _fastest(one, _run("limit", rows=rows))
        two = _fastest(two, _run("limit_halves", rows=rows))
    print(f"PostgreSQL alone, psql \\copy of {rows:,} rows: 1 process {one.seconds:.2f} s "
          f"(CPU s: {_cpu_parts(one.extra['cpu'])}; {_cores(one.extra['cpu'], one.seconds):.2f} cores busy), "
          f"2 processes (a half each) {two.seconds:.2f} s "
          f"({_cores(two.extra['cpu'], two.seconds):.2f} cores busy)", flush=True)
    return one, two


def _busy_one_worker(runs: dict[int, Measurement]) -> float:
    """Cores the 1-worker run kept busy while planning and exporting."""
    return _cores(runs[1].extra["cpu_shards"], runs[1].extra["until_load_seconds"])


def _cpu_parts(cpu: dict[str, float]) -> str:
    return ", ".join(f"{part} {seconds:.1f}" for part, seconds in cpu.items())


def _cores(cpu: dict[str, float], seconds: float) -> float:
    """How many cores the case's own parts kept busy on average over `seconds` (not "other")."""
    return sum(value for part, value in cpu.items() if part != "other") / seconds


def _shard_speedup(runs: dict[int, Measurement]) -> float:
    return runs[1].extra["shards_seconds"] / runs[2].extra["shards_seconds"]


def _phase(run: Measurement) -> float:
    """Seconds of a run without its load job: planning and the shards."""
    return run.extra["plan_seconds"] + run.extra["shards_seconds"]


def _ratio(a: Measurement, b: Measurement) -> float:
    return a.rows_per_second / b.rows_per_second


def _end_to_end(rows: int, shards: int, repeat: int) -> tuple[dict[int, Measurement], dict[int, Measurement]]:
    """Case 4 with 1 and 2 workers, whole runs and (`offline`) the shard phase alone into the
    storage stand-in; the fastest round of each."""
    from api.demo.services import local_cloud

    env = {
        "FLASK_APP": "api",
        "DATABASE_URL": database_url(rows),
        "BENCH_SHARD_SIZE": str(math.ceil(rows / shards)),
        "REDIS_URL": REDIS_URL,
        "ETL_EXPORT_MODULES": "bench.exports",
        "ETL_SYNC_BUCKET": "bq-etl-bench",
        "ETL_BQ_DATASET": "bench",
        "ETL_QUEUE": "bq-etl-bench",
        "ETL_SHARD_RETRIES": "0",
        "ETL_GZIP_LEVEL": "0",
    }
    runs: dict[int, Measurement] = {}
    offline: dict[int, Measurement] = {}
    with local_cloud(WORK_DIR / "cloud", project="bq-etl-bench") as cloud:
        for round_ in range(1, repeat + 1):
            tag = f" [{round_}/{repeat}]" if repeat > 1 else ""
            for workers in (1, 2):
                for best, what in ((runs, "end to end"), (offline, "shards, storage stand-in")):
                    m = _run("end_to_end", env={**env, **cloud.env()}, workers=workers,
                             log_dir=str(WORK_DIR / "logs"), offline=best is offline)
                    label = f"4 {what}, {workers} worker{'s' if workers > 1 else ''}, {m.extra['shards']} shards{tag}"
                    print(row(label, m), flush=True)
                    load = "" if best is offline else f", load {m.extra['load_seconds']:.1f} s"
                    print(f"{'':<6}plan {m.extra['plan_seconds']:.1f} s, shards {m.extra['shards_seconds']:.1f} s{load}; "
                          f"CPU s until the load: {_cpu_parts(m.extra['cpu_shards'])}; "
                          f"{_cores(m.extra['cpu_shards'], m.extra['until_load_seconds']):.2f} cores busy", flush=True)
                    best[workers] = _fastest(best.get(workers), m)
    return runs, offline


def _fastest(best: Measurement | None, new: Measurement) -> Measurement:
    fastest = new if best is None or new.seconds < best.seconds else best
    # The memory figure is the worst round's: a peak must not hide behind a fast run.
    fastest.peak_mb = max(new.peak_mb, best.peak_mb if best else 0)
    return fastest


def _case(label: str, name: str, **kwargs) -> Measurement:
    measurement = _run(name, **kwargs)
    print(row(label, measurement), flush=True)
    return measurement


def _run(name: str, env: dict[str, str] | None = None, **kwargs) -> Measurement:
    """Run a case with a fresh output folder, deleted afterwards (outputs are hundreds of MB).
    Case 3 writes only its spool file (see `bench.local_storage`)."""
    out = WORK_DIR / "out" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if name in ("limit", "limit_halves", "copy_limit", "mariadb_limit", "naive", "unchecked", "reference"):
        kwargs["out"] = str(out / f"{name}.json")
    try:
        return run_case(name, env=env, **kwargs)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main(sys.argv[1:])
