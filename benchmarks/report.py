"""Turns pytest-benchmark JSON into a table of medians and maskx speed-ups."""
import json
from collections import OrderedDict


def collect(data: dict) -> "OrderedDict[str, dict[str, float]]":
    """group -> impl -> median seconds, in the order the benchmarks ran."""
    groups: OrderedDict[str, dict[str, float]] = OrderedDict()
    for bench in data["benchmarks"]:
        impl = bench.get("extra_info", {}).get("impl", bench["name"])
        groups.setdefault(bench["group"] or bench["name"], {})[impl] = bench["stats"]["median"]
    return groups


def _ratio(r: float) -> str:
    """Two decimals near parity, where one would round 0.95 and 1.04 alike."""
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def format_table(data: dict) -> str:
    rows: list[list[str]] = [["case", "impl", "median ms", "maskx speed-up"]]
    for group, impls in collect(data).items():
        ours = impls.get("maskx")
        for impl, median in impls.items():
            speedup = _ratio(median / ours) if ours and impl != "maskx" else ""
            rows.append([group, impl, f"{median * 1e3:.2f}", speedup])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)
