"""The Python argument checks: messages are built only when a check fails."""
import ast
import pathlib

import pytest

import maskx_kernels
from maskx_kernels._validation import check

PACKAGE = pathlib.Path(maskx_kernels.__file__).parent


def test_failing_check_raises_its_message():
    with pytest.raises(ValueError, match="^op: x must be 4-D, got 3$"):
        check(False, lambda: f"op: x must be {4}-D, got {3}")


def test_passing_check_never_builds_its_message():
    def message():
        raise AssertionError("a passing check built its message")

    check(True, message)


def _check_calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check":
            yield node


def test_every_check_in_the_package_passes_a_lazy_message():
    """A plain string would turn the intended ValueError into a TypeError on failure."""
    calls, eager = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _check_calls(ast.parse(path.read_text(), str(path))):
            calls += 1
            if len(call.args) != 2 or not isinstance(call.args[1], ast.Lambda):
                eager.append(f"{path.relative_to(PACKAGE)}:{call.lineno}")
    assert calls > 40, "the scan found too few check() calls to be looking at the package"
    assert not eager, f"check() calls without a lambda message: {eager}"
