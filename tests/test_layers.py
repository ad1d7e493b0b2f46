"""The package's floors: a module imports only from its own floor or those below it (no upward arrows), so that each
concept can be read, tested and replaced from the bottom up."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "daflow"
FLOORS = [
    {"lazy", "files", "choices", "configs", "shard"},  # plain helpers
    {"flow"},  # flow files, metrics, warping
    {"data"},  # datasets, synthetic clips, degradations
    {"models"},  # every network and its weights
    {"inference"},  # videos of any length through a model
    {"eval", "restoration"},  # benchmarks and analysis; restoration
    {"train"},  # the training stages
    {"api"},  # daflow.load_model / daflow.evaluate
    {"recipe"},  # the recipes and their reports
    {"cli"},  # the command line
]


def _floor(name: str) -> int:
    return next(i for i, names in enumerate(FLOORS) if name in names)


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_no_module_imports_from_a_floor_above_its_own():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(path)
        if unit == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "daflow" and len(parts) > 1 and _floor(parts[1]) > _floor(unit):
                    upward.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert upward == []


def test_every_unit_has_a_floor():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert units <= set().union(*FLOORS), units - set().union(*FLOORS)


def test_no_function_is_longer_than_80_lines():
    """One screen a function: a longer one is split where its parts have names (``daflow``'s house style)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(
                    f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
                )
    assert long == []
