from __future__ import annotations

from pydantic import Field

from edge.config.settings import Name, Problem, References, Strict


class LiftPhone(Strict):
    name: Name
    elevator: str = Field(min_length=1, max_length=40)


SECTIONS = {"lift_phones": (list[LiftPhone], Field(default_factory=list, description="Emergency phones in the lifts."))}


def check(config, refs: References) -> list[Problem]:
    """One phone per lift: a second one in the same lift is a mistake in the file."""
    seen: set[str] = set()
    problems: list[Problem] = []
    for index, phone in enumerate(config.lift_phones):
        if phone.elevator in seen:
            problems.append((("lift_phones", index, "elevator"), f"elevator {phone.elevator!r} has a phone already"))
        seen.add(phone.elevator)
    return problems
