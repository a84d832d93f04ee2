"""Reading YAML configuration files with errors that name file and line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from procrustes_sim.errors import InputError


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML *text*; raise InputError naming *where* and the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputError(f"{where}{line}: invalid YAML ({problem}); fix the syntax on that line") from None


def read_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file; raise InputError if it is missing."""
    if not path.is_file():
        raise InputError(f"file {str(path)!r} not found; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not a UTF-8 text file (byte {error.start}); "
                         "give a YAML file") from None
    return load_yaml(text, str(path))


class Fields:
    """Typed access to one YAML mapping that collects every problem.

    Each getter records a problem instead of raising, so that one run of
    validation reports all invalid or unknown keys of a file together.
    """

    def __init__(self, mapping: Any, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        if not isinstance(mapping, dict):
            problems.append(f"{path}: expected a mapping, got {type(mapping).__name__}")
            mapping = {}
        self.mapping = mapping
        self._used: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key not in self.mapping:
            if default is _REQUIRED:
                self.problems.append(f"{self.path}.{key}: missing")
            return default
        return self.mapping[key]

    def number(self, key: str, default: Any = None, *, minimum: float = 0.0,
               integer: bool = False, strict: bool = True, unit: str = "") -> Any:
        """Return a number above *minimum* (at or above it when strict is False)."""
        value = self._get(key, _REQUIRED if default is None else default)
        if value is _REQUIRED:
            return 1
        kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        bad = isinstance(value, bool) or not kind_ok
        if not bad:
            # NaN fails every comparison and infinity passes the minimum, so both
            # need their own check.
            bad = (isinstance(value, float) and not math.isfinite(value)) \
                or (value <= minimum if strict else value < minimum)
        if bad:
            relation = ">" if strict else ">="
            kind = "an integer" if integer else "a finite number"
            unit_text = f" {unit}" if unit else ""
            self.problems.append(f"{self.path}.{key}: {value!r} is invalid; expected {kind} "
                                 f"{relation} {minimum:g}{unit_text}")
            return default if default not in (None, _REQUIRED) else 1
        return value

    def text(self, key: str, default: Any = None, *, choices: tuple[str, ...] = ()) -> Any:
        """Return a string, optionally one of *choices*."""
        value = self._get(key, _REQUIRED if default is None else default)
        if value is _REQUIRED:
            return ""
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            self.problems.append(f"{self.path}.{key}: {value!r} is invalid; expected {allowed}")
            # A placeholder keeps validation going; the problem is already recorded.
            if default not in (None, _REQUIRED):
                return default
            return choices[0] if choices else ""
        return value

    def flag(self, key: str, default: bool) -> bool:
        """A boolean."""
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.problems.append(f"{self.path}.{key}: {value!r} is invalid; expected true or false")
            return default
        return value

    def section(self, key: str) -> "Fields":
        """Return the fields of a nested mapping."""
        value = self._get(key, _REQUIRED)
        if value is _REQUIRED:
            value = {}
        return Fields(value, f"{self.path}.{key}", self.problems)

    def optional(self, key: str, default: Any = None) -> Any:
        """Any value, unchecked."""
        return self._get(key, default)

    def reject_unknown(self) -> None:
        """Record every key that no getter asked for."""
        for key in self.mapping:
            if key not in self._used:
                self.problems.append(f"{self.path}.{key}: unknown key; allowed keys are "
                                     f"{', '.join(sorted(self._used))}")


_REQUIRED = object()


def raise_problems(problems: list[str], where: str) -> None:
    """Raise one InputError listing every collected problem."""
    if problems:
        raise InputError(f"{where}: {len(problems)} problem(s): " + "; ".join(problems))
