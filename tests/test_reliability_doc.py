"""docs/reliability.md cannot drift: every row of its fault matrix names a test that exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`\s*\|\s*$")


def defined_tests(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_row_of_the_fault_matrix_names_an_existing_test():
    rows = [
        line
        for line in (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("| case") and not line.startswith("|---")
    ]
    assert len(rows) >= 30
    missing = []
    for row in rows:
        match = ROW_TEST.search(row)
        assert match, f"a row without a test: {row}"
        path, name = ROOT / match.group(1), match.group(2)
        if not path.is_file() or name not in defined_tests(path):
            missing.append(f"{match.group(1)}::{name}")
    assert not missing, f"the fault matrix names tests that do not exist: {missing}"
