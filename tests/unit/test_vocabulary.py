"""The toolkit's core knows no service: every word of the coupon service (coupons,
claims, stock, user ids) lives in `chaos/targets/`, comments and data files included."""

from __future__ import annotations

import re
from pathlib import Path

import chaos

CHAOS = Path(chaos.__file__).resolve().parent
SERVICE_WORDS = re.compile(r"\b(coupons?|claim(s|ed|ing)?|stock|user_id)\b", re.IGNORECASE)


def _files() -> list[Path]:
    return sorted(
        p
        for p in CHAOS.rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".yaml", ".yml", ".json", ".md", ".txt")
        and "targets" not in p.relative_to(CHAOS).parts
    )


def test_the_files_outside_targets_are_read() -> None:
    names = {p.relative_to(CHAOS).as_posix() for p in _files()}
    assert {"run/engine.py", "scenarios/catalogue.yaml", "scenarios/ha.yaml"} <= names


def test_no_service_word_outside_targets() -> None:
    found = [
        f"{path.relative_to(CHAOS)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if SERVICE_WORDS.search(line)
    ]
    assert not found, "service words outside chaos/targets/:\n" + "\n".join(found)


def test_the_pattern_catches_what_it_must() -> None:
    for text in ("a Coupon", "the claims table", "claimed", "stock left", "op.user_id"):
        assert SERVICE_WORDS.search(text), text
    for text in ("the postgres user", "proclaimed", "stockpile", "keys"):
        assert not SERVICE_WORDS.search(text), text
