"""The exporter's benchmark (`make bench`, `python -m bench`): PostgreSQL's own JSON, a naive
loop, one shard of the exporter, and whole runs through RQ workers and the emulators, measured
in one run on one generated clinic-like table."""
