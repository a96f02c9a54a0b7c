"""`python -m api.demo` (what `make demo` runs): the end-to-end demo in api/demo/run.py."""
from api.demo.run import main

main(prog_name="python -m api.demo")
