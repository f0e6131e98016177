"""DynamoDB attribute values and update expressions for the low-level client."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

Item = dict[str, Any]


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def text(item: Item, name: str) -> str | None:
    attr = item.get(name)
    return None if attr is None else str(attr["S"])


def number(item: Item, name: str) -> float | None:
    attr = item.get(name)
    return None if attr is None else float(attr["N"])


def integer(item: Item, name: str) -> int:
    return int(item[name]["N"])


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def is_too_large(exc: ClientError) -> bool:
    """Whether DynamoDB refused an item for exceeding its 400 KB limit."""
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) == "ValidationException" and "exceeded the maximum allowed size" in message


class Update:
    """An update expression with its placeholder maps, built one action at a time."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._placeholders: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._sets: list[str] = []
        self._removes: list[str] = []
        self._adds: list[str] = []
        self._deletes: list[str] = []

    def name(self, attribute: str) -> str:
        """The placeholder for an attribute name (or a map key) in this expression."""
        placeholder = self._placeholders.get(attribute)
        if placeholder is None:
            placeholder = f"#n{len(self.names)}"
            self.names[placeholder] = attribute
            self._placeholders[attribute] = placeholder
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def path(self, *attributes: str) -> str:
        return ".".join(self.name(a) for a in attributes)

    def set(self, attribute: str, value: Any, *, within: str | None = None) -> None:
        """``SET attribute = value``; with ``within``, the entry ``attribute`` of the map ``within``."""
        target = self.path(within, attribute) if within else self.name(attribute)
        self._sets.append(f"{target} = {self.value(value)}")

    def set_or_remove(self, attribute: str, value: Any | None) -> None:
        if value is None:
            self._removes.append(self.name(attribute))
        else:
            self.set(attribute, value)

    def add(self, attribute: str, value: Any) -> None:
        self._adds.append(f"{self.name(attribute)} {self.value(value)}")

    def delete(self, attribute: str, value: Any) -> None:
        self._deletes.append(f"{self.name(attribute)} {self.value(value)}")

    @property
    def expression(self) -> str:
        parts = []
        for keyword, actions in (
            ("SET", self._sets),
            ("REMOVE", self._removes),
            ("ADD", self._adds),
            ("DELETE", self._deletes),
        ):
            if actions:
                parts.append(f"{keyword} {', '.join(actions)}")
        return " ".join(parts)

    def params(self, condition: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``update_item`` (after ``condition`` has taken its placeholders)."""
        out: dict[str, Any] = {
            "UpdateExpression": self.expression,
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        if condition:
            out["ConditionExpression"] = condition
        return out
