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
    from app.domain.reasons import DESCRIPTIONS, StatusReason

    readme = (ROOT / "README.md").read_text()
    assert set(DESCRIPTIONS) == set(StatusReason)
    for reason, meaning in DESCRIPTIONS.items():
        assert f"| `{reason.value}` | {meaning} |" in readme, reason


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_vocabulary_imports_nothing_of_ours() -> None:
    ours = ("app", "workers", "config", "scripts")
    for path in sorted((ROOT / "app" / "domain").glob("*.py")):
        inward = {
            m for m in _imported_modules(path) if m.split(".")[0] in ours and m != "app.domain"
        }
        assert {m for m in inward if not m.startswith("app.domain.")} == set(), path.name


def test_the_vocabulary_contract_names_every_other_package() -> None:
    """The import-linter contract lists packages by name: a new one must join it."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    ground = next(c for c in contracts["contracts"] if c.get("source_modules") == ["app.domain"])
    packages = {
        f"app.{p.name}" for p in (ROOT / "app").iterdir() if (p / "__init__.py").exists()
    } - {"app.domain"}
    assert packages | {"workers", "config"} == set(ground["forbidden_modules"])


def test_modules_and_rooms_stay_livable() -> None:
    """No module past 600 lines, no folder past 15 modules: rooms, not halls."""
    too_long, crowded = [], []
    for top in ("app", "workers", "config", "scripts", "tests"):
        folders = {ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())}
        for folder in sorted(folders):
            modules = list(folder.glob("*.py"))
            if len(modules) > 15:
                crowded.append(f"{folder.relative_to(ROOT)} ({len(modules)})")
            too_long += [
                f"{m.relative_to(ROOT)} ({n})"
                for m in modules
                if (n := len(m.read_text().splitlines())) > 600
            ]
    assert too_long == []
    assert crowded == []
