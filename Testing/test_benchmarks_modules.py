"""`make bench` (`python -m benchmarks`) runs every ``benchmarks/bench_*.py`` and calls its
``run()``: a module named so without ``run`` stops the whole benchmark run (it did: a script
``bench_lesion_clicks.py`` had only ``main``). Helper scripts take another name."""

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_bench_module_defines_run():
    mods = sorted(BENCH.glob("bench_*.py"))
    assert mods, "no benchmark modules found"
    missing = []
    for p in mods:
        tree = ast.parse(p.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Name)}
        if "run" not in names:
            missing.append(p.name)
    assert not missing, f"benchmark modules without run(): {missing}"
