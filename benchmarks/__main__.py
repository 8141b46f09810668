"""Run every ``benchmarks/bench_*.py`` and print one table.

Each module exposes ``run() -> list[dict]``; a row has ``name``, ``value``, ``unit`` and, where a
baseline was timed in the same run, ``baseline`` and ``ratio`` (baseline / value, > 1 is faster).
``python -m benchmarks [substring ...]`` runs only the modules whose name contains a substring.
Results are also written to ``benchmarks/results.json``.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mods = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if argv:
        mods = [m for m in mods if any(a in m for a in argv)]
    print(f"# IMAGIO benchmarks on {platform.node()} ({platform.processor() or platform.machine()}), "
          f"python {platform.python_version()}")
    all_rows = {}
    for m in mods:
        t0 = time.perf_counter()
        rows = importlib.import_module(f"benchmarks.{m}").run()
        all_rows[m] = rows
        print(f"\n## {m}  ({time.perf_counter() - t0:.1f} s)")
        print(f"{'measure':58s} {'value':>12s} {'unit':8s} {'baseline':>12s} {'ratio':>8s}")
        for r in rows:
            print(f"{r['name'][:58]:58s} {_fmt(r.get('value')):>12s} {r.get('unit', ''):8s} "
                  f"{_fmt(r.get('baseline')):>12s} {_fmt(r.get('ratio')):>8s}")
    (HERE / "results.json").write_text(json.dumps(all_rows, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
