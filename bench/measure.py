"""Run commands one after the other; write each one's wall time and peak RSS as JSON.

    python -I -S bench/measure.py RESULT.json CPUS COMMANDS_JSON

CPUS: "" for every CPU, or a comma-separated CPU list the commands are pinned to.
COMMANDS_JSON: a JSON list of argv lists.

Why a wrapper: Linux folds the RSS of the address space a child replaces at exec() into the
child's ru_maxrss, so a child started straight from the benchmark driver (which holds pandas and
the generated data) would inherit the driver's RSS as a floor. This wrapper is a bare interpreter
(-I -S, standard library only, a few MB), and it reads each child's own rusage with os.wait4.
``floor_mb`` is what the same measurement reports for /bin/true: the wrapper's share.
"""

import json
import os
import sys
import time


def run(argv: list[str]) -> dict:
    started_at = time.time()
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    return {
        "command": argv[:6],
        "wall_s": time.perf_counter() - started,
        "started_at": started_at,
        "ended_at": time.time(),
        "max_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "returncode": os.waitstatus_to_exitcode(status),
    }


def main() -> int:
    result_path, cpus, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    floor = run(["true"])["max_rss_mb"]
    results = []
    for argv in commands:
        sys.stdout.write(f"\n$ {' '.join(argv)}\n")
        sys.stdout.flush()
        results.append(run(argv))
        if results[-1]["returncode"] != 0:
            break
    with open(result_path, "w") as handle:
        json.dump({"floor_mb": floor, "processes": results}, handle)
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
