"""`mammocad --help` latency, side by side with `python -c "import click"` (the floor).

Runs each command ``--repeats`` times, alternating, in fresh processes and prints one JSON line
per command with the median and the ratio to the click floor. ``--src`` points at another
checkout's ``src`` to measure an older version the same way (PYTHONPATH first on the path).

    python benchmarks/bench_cli_help.py --repeats 7
    python benchmarks/bench_cli_help.py --repeats 7 --src /tmp/before/src   # e.g. a worktree of 228261b
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _time(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--src", default=None, help="a checkout's src folder to measure instead of the installed one")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = args.src
    cli = [sys.executable, "-m", "mammocad.cli"]
    commands = {"import click": [sys.executable, "-c", "import click"], "mammocad --help": [*cli, "--help"],
                "mammocad prepare --help": [*cli, "prepare", "--help"],
                "mammocad train-classifier --help": [*cli, "train-classifier", "--help"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, argv in commands.items():
            times[name].append(_time(argv, env))
    floor = statistics.median(times["import click"])
    for name, values in times.items():
        median = statistics.median(values)
        print(json.dumps({"command": name, "median_s": round(median, 3), "max_s": round(max(values), 3),
                          "ratio_to_click": round(median / floor, 2), "src": args.src or "installed"}))


if __name__ == "__main__":
    main()
