"""The package keeps the shape docs/architecture.md draws: modules small enough to hold
one idea (STYLE.md: 150-400 lines; a file past ~450 usually holds two)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "homeiq"
MAX_LINES = 450


def test_no_module_is_over_the_size_cap() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
    }
    assert len(sizes) > 50  # the walk found the package
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
