"""The sections of `make bench` that bench/run.py runs in its own process, a module each:
``bench_<section>(...)`` measures, ``table_rows(result)`` gives its rows of the table ("not run"
rows when it was skipped) and, for some, ``time_lines(result)`` its lines of "Where the time goes".
bench/serving.py and bench/monitoring.py are sections too, kept beside run.py because they also
run alone."""
