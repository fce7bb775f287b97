"""The tests' own layout (``tests/support/__init__.py``): no test module imports another, and
what tests share lives in ``tests/support``.

A test module that imports another runs the other's module code (and, for fixtures, changes what
pytest collects) whenever it runs, and ties two test files together that read as independent.
Besides ``test_*.py``, ``conftest.py`` and ``__init__.py``, every module under ``tests/`` belongs
in ``tests/support``, where the next test looks for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = "support"
ALLOWED_ELSEWHERE = {"conftest.py", "__init__.py"}


def _is_test_module_name(name: str) -> bool:
    return name.startswith("test_")


def _names_a_test_module(parts: list[str], tests: Path) -> bool:
    """Whether a dotted module name is (in) a test module of ours: ``tests.<...>.test_x`` or, as
    a rootdir-relative import would write it, a bare ``test_x``."""
    if not parts:
        return False
    if parts[0] == tests.name:
        return any(_is_test_module_name(part) for part in parts[1:])
    return _is_test_module_name(parts[0])


def _package_of(path: Path, tests: Path) -> list[str]:
    """The dotted package a module under ``tests`` is in, as parts: ``["tests", "e2e"]``."""
    return [tests.name, *path.parent.relative_to(tests).parts]


def imported_test_modules(path: Path, tests: Path = TESTS) -> list[str]:
    """The test modules (``test_*``) that the module at ``path`` imports, absolutely or
    relatively, at the top or inside a function: ``"tests.e2e.test_privacy"`` and the like."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, tests)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _names_a_test_module(alias.name.split("."), tests):
                    found.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .test_x import y, from . import test_x, from .. ...
                base = package[: len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
            else:
                parts = node.module.split(".") if node.module else []
            if _names_a_test_module(parts, tests):
                found.append(".".join(parts))
                continue
            # from tests.e2e import test_privacy: a test module imported from its package.
            is_package = (tests.parent.joinpath(*parts)).is_dir() if parts else False
            found += [
                ".".join([*parts, alias.name])
                for alias in node.names
                if is_package and _is_test_module_name(alias.name)
            ]
    return found


def python_modules(tests: Path = TESTS) -> list[Path]:
    return sorted(path for path in tests.rglob("*.py") if "__pycache__" not in path.parts)


def import_violations(tests: Path = TESTS) -> list[str]:
    """``module imports test module`` for every module under ``tests`` (test modules, conftest
    files and tests/support alike) that imports a test module."""
    return [
        f"{path.relative_to(tests.parent)} imports {imported}"
        for path in python_modules(tests)
        for imported in imported_test_modules(path, tests)
    ]


def placement_violations(tests: Path = TESTS) -> list[str]:
    """Helper modules outside tests/support, and test modules inside it."""
    found = []
    for path in python_modules(tests):
        where = path.relative_to(tests)
        in_support = where.parts[0] == SUPPORT
        is_test = _is_test_module_name(path.name)
        if in_support and is_test:
            found.append(f"{path.relative_to(tests.parent)}: tests/support holds no tests")
        elif not in_support and not is_test and path.name not in ALLOWED_ELSEWHERE:
            found.append(f"{path.relative_to(tests.parent)}: a helper belongs in tests/support")
    return found


def test_no_test_module_imports_another() -> None:
    violations = import_violations()
    assert not violations, "move what they share to tests/support:\n" + "\n".join(violations)


def test_shared_helpers_live_in_tests_support_and_only_there() -> None:
    violations = placement_violations()
    assert not violations, "\n".join(violations)


def test_there_are_modules_to_check() -> None:
    names = {path.relative_to(TESTS).as_posix() for path in python_modules()}
    assert {"unit/test_test_layout.py", "support/__init__.py", "integration/conftest.py"} <= names


# The checks themselves, on a small tree laid out as the tests were before tests/support.


def _write(root: Path, files: dict[str, str]) -> Path:
    tests = root / "tests"
    for name, text in files.items():
        (tests / name).parent.mkdir(parents=True, exist_ok=True)
        (tests / name).write_text(text)
    return tests


@pytest.mark.parametrize(
    ("source", "imported"),
    [
        pytest.param("from tests.e2e.test_lifecycle import review\n", "tests.e2e.test_lifecycle",
                     id="from-module"),
        pytest.param("import tests.unit.test_validation\n", "tests.unit.test_validation",
                     id="import-module"),
        pytest.param("from tests.e2e import test_lifecycle\n", "tests.e2e.test_lifecycle",
                     id="from-package"),
        pytest.param("from .test_lifecycle import review\n", "tests.integration.test_lifecycle",
                     id="relative-module"),
        pytest.param("from . import test_lifecycle\n", "tests.integration.test_lifecycle",
                     id="relative-package"),
        pytest.param("from ..unit.test_validation import body\n", "tests.unit.test_validation",
                     id="relative-parent"),
        pytest.param("import test_lifecycle\n", "test_lifecycle", id="bare-name"),
        pytest.param("def f() -> None:\n    from tests.e2e.test_lifecycle import review\n",
                     "tests.e2e.test_lifecycle", id="inside-a-function"),
    ],
)  # fmt: skip
def test_an_import_of_a_test_module_is_found_however_it_is_written(
    tmp_path: Path, source: str, imported: str
) -> None:
    tests = _write(
        tmp_path,
        {
            "__init__.py": "",
            "e2e/__init__.py": "",
            "e2e/test_lifecycle.py": "",
            "integration/__init__.py": "",
            "integration/test_rules.py": source,
        },
    )
    assert import_violations(tests) == [f"tests/integration/test_rules.py imports {imported}"]


def test_imports_of_support_conftest_and_the_code_under_test_are_fine(tmp_path: Path) -> None:
    tests = _write(
        tmp_path,
        {
            "e2e/test_lifecycle.py": (
                "from tests.support.bodies import appeal_body, test_data\n"
                "from tests.e2e.conftest import Pipeline\n"
                "from services.intake import validation\n"
                "import pytest\n"
            ),
            "support/bodies.py": "",
        },
    )
    assert import_violations(tests) == []


def test_a_helper_outside_tests_support_or_a_test_inside_it_is_found(tmp_path: Path) -> None:
    tests = _write(
        tmp_path,
        {
            "__init__.py": "",
            "conftest.py": "",
            "integration/conftest.py": "",
            "integration/kafka_helpers.py": "",
            "integration/test_rules.py": "",
            "support/__init__.py": "",
            "support/bodies.py": "",
            "support/test_bodies.py": "",
        },
    )
    assert placement_violations(tests) == [
        "tests/integration/kafka_helpers.py: a helper belongs in tests/support",
        "tests/support/test_bodies.py: tests/support holds no tests",
    ]
