"""Architecture rules that are not import rules (those are import-linter contracts in make lint)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        attribute = (
            isinstance(node, ast.Attribute)
            and node.attr in {"environ", "getenv", "environb"}
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )
        imported = (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in {"environ", "getenv"} for alias in node.names)
        )
        if attribute or imported:
            lines.append(getattr(node, "lineno", 0))
    return lines


def test_the_environment_is_read_only_in_config() -> None:
    offenders = []
    for package in ("app", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for line in _reads_environment(ast.parse(path.read_text(), str(path))):
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == []
    assert _reads_environment(ast.parse((ROOT / "config" / "settings.py").read_text()))


def test_the_check_itself_sees_both_spellings() -> None:
    assert sorted(
        _reads_environment(ast.parse("import os\nos.environ.get('X')\nos.getenv('Y')"))
    ) == [2, 3]
    assert _reads_environment(ast.parse("from os import environ")) == [1]


def test_adding_a_provider_is_one_module_and_one_registration() -> None:
    from app.providers import PROVIDERS

    registry = (ROOT / "app" / "providers" / "__init__.py").read_text()
    for name, provider in PROVIDERS.items():
        assert provider.name == name
        module = type(provider).__module__
        assert (ROOT / Path(*module.split("."))).with_suffix(".py").exists()
        assert type(provider).__name__ in registry
        # The shared code (web, domain, tasks) never names a provider; only the demo picks one.
        shared = [ROOT / "app" / d for d in ("api", "messaging", "models", "security")]
        for path in [p for d in [*shared, ROOT / "workers"] for p in d.rglob("*.py")]:
            assert f'"{name}"' not in path.read_text(), (name, path)


def test_the_readme_lists_every_status_reason() -> None:
    from app.messaging.reasons import DESCRIPTIONS, StatusReason

    readme = (ROOT / "README.md").read_text()
    assert set(DESCRIPTIONS) == set(StatusReason)
    for reason, meaning in DESCRIPTIONS.items():
        assert f"| `{reason.value}` | {meaning} |" in readme, reason
