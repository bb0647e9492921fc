"""YAML loading that remembers where every value came from.

Mappings load as :class:`SrcDict` and sequences as :class:`SrcList`; both carry
the line of the node itself and the line of each key or item, so validation can
say ``file:line`` for any value without a second pass over the text.
"""

from __future__ import annotations

import yaml

from .errors import Problem, ZoneInvalid


class SrcDict(dict):
    line: int = 0
    lines: dict

    def line_of(self, key) -> int:
        return self.lines.get(key, self.line)


class SrcList(list):
    line: int = 0
    lines: list

    def line_of(self, index: int) -> int:
        return self.lines[index] if index < len(self.lines) else self.line


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> SrcDict:
    loader.flatten_mapping(node)
    out = SrcDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> SrcList:
    out = SrcList(loader.construct_object(item, deep=True) for item in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [item.start_mark.line + 1 for item in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_text(text: str, filename: str):
    """Parse YAML text; a syntax error becomes a :class:`ZoneInvalid` with its line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ZoneInvalid([Problem(filename, line, f"YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ZoneInvalid([Problem(filename, 1, f"YAML: {exc}")]) from None
