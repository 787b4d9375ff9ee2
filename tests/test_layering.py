"""The layering in DESIGN.md, checked: `bot`, `web` -> `world` -> `storage`, wiring above all.

Every `.py` file under world/, storage/, bot/, web/ and shared_world/ is parsed with `ast`;
every Import and ImportFrom node counts, wherever it is (inside functions, under
`if TYPE_CHECKING:`), with relative imports resolved against the file's own package. An import
that points the wrong way fails the test with `file:line imports module (rule)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ("world", "storage", "bot", "web", "shared_world")

# What a front door may not reach past the facade for. They may use world.service,
# world.types, world.paths, world.settings, world.logsafe, world.quoting,
# world.providers.base and world.play.
WORLD_INTERNALS = (
    "world.db",
    "world.models",
    "world.scenes",
    "world.pipeline",
    "world.claims",
    "world.migrations",
    "world.sweep",
    "world.watchdog",
    "world.events",
    "world.views",
    "world.jobs",
    "world.claimer",
    "world.metrics",
)


@dataclass(frozen=True)
class Rule:
    package: str  # the importing top-level package
    forbidden: tuple[str, ...]  # module prefixes it must not import
    why: str


RULES = (
    Rule(
        "storage",
        ("world", "bot", "web", "shared_world", "discord", "aiohttp.web"),
        "storage sits below world and knows no front door",
    ),
    Rule(
        "world",
        ("bot", "web", "shared_world", "discord", "aiohttp.web"),
        "the domain has no Discord, no HTTP server and no process wiring",
    ),
    Rule("bot", ("web", "shared_world"), "the Discord front door does not know the HTTP one"),
    Rule("web", ("bot", "shared_world", "discord"), "the HTTP front door does not know Discord"),
    Rule("bot", WORLD_INTERNALS, "front doors talk to world's facade, not its internals"),
    Rule("web", WORLD_INTERNALS, "front doors talk to world's facade, not its internals"),
)


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    module: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module} ({self.why})"


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """`world/providers/base.py` -> ("world.providers.base", False); `__init__` -> True."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def resolve(importer: str, is_package: bool, module: str | None, level: int) -> str:
    """The absolute name of `from <level dots><module> import ...` written in `importer`."""
    if level == 0:
        return module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(package) - 1:
        raise ValueError(f"{importer}: relative import beyond the top-level package")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(source: str, importer: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, candidate module) for every import in `source`.

    `from a.b import c` yields both `a.b` and `a.b.c`, since `c` may be a submodule
    (`from world import db` is an import of world.db).
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = resolve(importer, is_package, node.module, node.level)
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}" if base else alias.name


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def check_source(source: str, file: str, importer: str, is_package: bool) -> list[Violation]:
    """The violations in one file's source (`importer` is its dotted module name)."""
    top = importer.split(".")[0]
    rules = [rule for rule in RULES if rule.package == top]
    found: list[Violation] = []
    for line, module in imported_modules(source, importer, is_package):
        broken = next(
            (rule for rule in rules if any(_within(module, p) for p in rule.forbidden)), None
        )
        already = any(v.line == line and _within(module, v.module) for v in found)
        if broken is not None and not already:  # `from bot.app import x` is one: bot.app
            found.append(Violation(file, line, module, broken.why))
    return sorted(found, key=lambda v: (v.line, v.module))


def check_tree(root: Path) -> tuple[list[Violation], int]:
    """Every violation under `root`'s packages, and how many files were read."""
    violations: list[Violation] = []
    files = 0
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            files += 1
            importer, is_package = module_name(path, root)
            relative = path.relative_to(root).as_posix()
            violations.extend(
                check_source(path.read_text(encoding="utf-8"), relative, importer, is_package)
            )
    return sorted(violations, key=lambda v: (v.file, v.line, v.module)), files


def test_every_import_points_down_the_layers():
    violations, files = check_tree(PROJECT)
    assert files > 30, f"only {files} files found under {', '.join(PACKAGES)}"
    assert not violations, "imports against the layering in DESIGN.md:\n" + "\n".join(
        f"  {v}" for v in violations
    )


def test_the_checker_catches_a_domain_module_importing_a_front_door(tmp_path: Path):
    world = tmp_path / "world" / "providers"
    world.mkdir(parents=True)
    (tmp_path / "world" / "__init__.py").write_text("")
    (world / "__init__.py").write_text("")
    (world / "leaky.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import aiohttp\n"
        "from . import base\n"
        "from bot import x\n"
        "if TYPE_CHECKING:\n"
        "    from web.app import build_app\n"
        "def later():\n"
        "    import discord.ext.commands\n"
        "    from aiohttp import web\n"
        "    from shared_world.cli import main\n"
    )
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "cog.py").write_text(
        "from world import db, service\n"
        "from world.scenes import Scene\n"
        "from world.play import Round\n"
    )
    violations, files = check_tree(tmp_path)
    assert files == 4
    assert [(v.file, v.line, v.module) for v in violations] == [
        ("bot/cog.py", 1, "world.db"),
        ("bot/cog.py", 2, "world.scenes"),
        ("world/providers/leaky.py", 5, "bot"),
        ("world/providers/leaky.py", 7, "web.app"),
        ("world/providers/leaky.py", 9, "discord.ext.commands"),
        ("world/providers/leaky.py", 10, "aiohttp.web"),
        ("world/providers/leaky.py", 11, "shared_world.cli"),
    ]
    assert str(violations[2]).startswith("world/providers/leaky.py:5 imports bot (the domain")


def test_relative_imports_resolve_against_the_files_package():
    assert resolve("world.providers.openrouter", False, "base", 1) == "world.providers.base"
    assert resolve("world.providers", True, "base", 1) == "world.providers.base"
    assert resolve("world.providers.openrouter", False, "settings", 2) == "world.settings"
    assert resolve("bot.cogs.adventure", False, None, 2) == "bot"
    source = "from .. import db\n"
    assert list(imported_modules(source, "world.providers.x", False)) == [
        (1, "world"),
        (1, "world.db"),
    ]
