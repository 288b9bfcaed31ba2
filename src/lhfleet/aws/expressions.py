"""DynamoDB update and condition expressions, built from plain dictionaries.

Every attribute name goes through a ``#name`` placeholder, because many of
ours (``state``, ``url``, ``total``) are DynamoDB reserved words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lhfleet.aws.items import attr

_NAME = re.compile(r"#(\w+)")
_VALUE = re.compile(r":(\w+)")


@dataclass(frozen=True)
class Update:
    """One UpdateItem: SET, REMOVE and ADD clauses and an optional condition.

    ``condition`` refers to attributes as ``#name`` and to the values in
    ``values`` as ``:key``.
    """

    set: Mapping[str, Any] = field(default_factory=dict)
    remove: Sequence[str] = ()
    add: Mapping[str, int] = field(default_factory=dict)
    condition: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def arguments(self) -> dict[str, Any]:
        """Return the keyword arguments of UpdateItem (or a transaction's Update)."""
        names: dict[str, str] = {}
        values = _used_values(self.values, self.condition or "")
        clauses = []
        if self.set:
            parts = []
            for name, value in self.set.items():
                names[f"#{name}"] = name
                values[f":set_{name}"] = attr(value)
                parts.append(f"#{name} = :set_{name}")
            clauses.append("SET " + ", ".join(parts))
        if self.remove:
            names.update({f"#{name}": name for name in self.remove})
            clauses.append("REMOVE " + ", ".join(f"#{name}" for name in self.remove))
        if self.add:
            parts = []
            for name, amount in self.add.items():
                names[f"#{name}"] = name
                values[f":add_{name}"] = attr(amount)
                parts.append(f"#{name} :add_{name}")
            clauses.append("ADD " + ", ".join(parts))
        arguments: dict[str, Any] = {"UpdateExpression": " ".join(clauses)}
        if self.condition:
            names.update({f"#{name}": name for name in _NAME.findall(self.condition)})
            arguments["ConditionExpression"] = self.condition
        arguments["ExpressionAttributeNames"] = names
        if values:
            arguments["ExpressionAttributeValues"] = values
        return arguments


def condition_arguments(condition: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the arguments of a ConditionCheck, Query filter or Scan filter."""
    arguments: dict[str, Any] = {
        "ExpressionAttributeNames": {
            f"#{name}": name for name in _NAME.findall(condition)
        },
    }
    used = _used_values(values, condition)
    if used:
        arguments["ExpressionAttributeValues"] = used
    return arguments


def _used_values(values: Mapping[str, Any], text: str) -> dict[str, Any]:
    """Return the attribute values that ``text`` refers to.

    DynamoDB rejects a request that passes a value its expressions never use.
    """
    used = set(_VALUE.findall(text))
    return {f":{key}": attr(value) for key, value in values.items() if key in used}
