"""Rules of the code base that a reviewer would otherwise check by hand."""

import ast

from conftest import ROOT


def test_no_function_of_the_package_is_longer_than_100_lines():
    """Issue 20: a 177-line training loop hid its state; long functions get a type or helpers."""
    long = []
    for path in sorted((ROOT / "src" / "normsweep").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 100:
                    long.append(f"{path.name}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long
