"""python -m benchmarks [pytest args]: runs the benchmark suite and prints, per case, the
median time of maskx and of each baseline measured in the same run, and maskx's speed-up.

Extra arguments go to pytest (e.g. `-k roi_align`). The JSON of the run is written to
benchmarks/results.json (or --benchmark-json=PATH)."""
import os
import sys

import pytest

from benchmarks.report import format_table, load


def main(argv):
    json_path = os.path.join(os.path.dirname(__file__), "results.json")
    for arg in argv:
        if arg.startswith("--benchmark-json="):
            json_path = arg.split("=", 1)[1]
    args = [os.path.dirname(__file__), "--benchmark-only", "-q", "-p", "no:cacheprovider", "--benchmark-columns=median,rounds"]
    if not any(a.startswith("--benchmark-json=") for a in argv):
        args.append(f"--benchmark-json={json_path}")
    code = pytest.main(args + list(argv))
    if code != 0:
        return code
    print()
    print(format_table(load(json_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
