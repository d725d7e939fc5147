"""Imports go one way (issue 19): a package may import the packages below it, never one
above. Every module's imports (also those inside functions) are read with ``ast``; the
order is ``LAYERS`` below, the one place that states it."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import proctor

ROOT = Path(proctor.__file__).parent

#: each part of ``proctor`` and the parts directly below it; what is below those is below it
#: too. The exam side: api → invigilation → flow → sitting → auth → events/evidence/store;
#: the live path (media → rules → vision → audio) stands below api and beside the exam side.
#: "base" is the package's own top-level modules that hold no domain (config, errors, ...).
LAYERS: dict[str, set[str]] = {
    "__main__": {"cli"},
    "cli": {"app", "doctor", "sitting"},  # `proctor sitting ...`: proctor.sitting.commands
    "app": {"api"},
    "api": {"runtime", "invigilation", "review"},
    "runtime": {"flow", "media"},
    "doctor": {"media"},
    "invigilation": {"flow"},
    "review": {"auth"},  # the roles table
    "flow": {"sitting"},
    "sitting": {"auth"},
    "auth": {"events"},
    "media": {"domain"},
    "events": {"domain", "store"},
    "domain": {"evidence", "rules"},
    "evidence": {"store", "vision"},
    "rules": {"vision"},
    "vision": {"audio"},
    "audio": {"base"},
    "store": {"base"},
    "base": set(),
}
#: proctor's top-level modules that are "base": settings, errors, small helpers
BASE_MODULES = {"config", "errors", "csvsafe", "logs", "metrics", "onnx", "times"}

#: imports that break the order today, each with why it is still there (importer, imported)
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def part_of(module: str) -> str:
    """``proctor.flow.steps`` → ``flow``; ``proctor.config`` → ``base``."""
    parts = module.split(".")
    if len(parts) < 2:
        return "base"
    name = parts[1]
    return "base" if name in BASE_MODULES else name


@cache
def below(part: str) -> frozenset[str]:
    out: set[str] = set()
    for lower in LAYERS[part]:
        out |= {lower} | below(lower)
    return frozenset(out)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            if target == "proctor":  # `from proctor import csvsafe`
                found |= {f"proctor.{a.name}" for a in node.names}
    return {t for t in found if t.startswith("proctor.")}


def modules() -> list[tuple[Path, str]]:
    return [
        (p, module_name(p))
        for p in sorted(ROOT.rglob("*.py"))
        if "migrations" not in p.relative_to(ROOT).parts
    ]


def test_every_part_has_a_place_in_the_order():
    parts = {part_of(m) for _, m in modules()}
    assert parts - set(LAYERS) == set(), "add the new package to LAYERS"


def test_imports_go_one_way():
    wrong = []
    for path, module in modules():
        here = part_of(module)
        for target in sorted(imports_of(path, module)):
            there = part_of(target)
            if there in (here, "base") or there in below(here):
                continue
            if (module, target) in KNOWN_EXCEPTIONS:
                continue
            wrong.append(f"{module} imports {target} ({here} is not above {there})")
    assert wrong == []


def test_known_exceptions_still_exist():
    """An exception that was fixed is taken off the list, so the list stays true."""
    found = {(m, t) for p, m in modules() for t in imports_of(p, m)}
    assert KNOWN_EXCEPTIONS <= found


def test_the_order_has_no_cycle():
    for part in LAYERS:
        assert part not in below(part)
