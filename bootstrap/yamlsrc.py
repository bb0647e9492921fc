"""YAML loading that remembers where every value came from.

Mappings load as :class:`SrcDict` and sequences as :class:`SrcList`; both carry
the line of the node itself and the line of each key or item, so validation can
say ``file:line`` for any value without a second pass over the text.

Loading is bounded so that a hostile file cannot hang or exhaust its reader:
its size, its nesting depth and the size of the tree it expands to (aliases
counted as many times as they are used, so an alias bomb is refused while it is
being composed, before anything walks it).
"""

from __future__ import annotations

import yaml
from yaml.events import AliasEvent

from .errors import Problem, ZoneInvalid

MAX_BYTES = 10 << 20      # a 10k-server zone is ~10 KB
MAX_DEPTH = 32            # a zone nests 5 deep
MAX_NODES = 200_000       # after alias expansion; the 10k-server zone has ~2,000


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
    """SafeLoader that bounds depth and expanded size while composing."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0      # nesting of the node being composed
        self._reach = 0      # the deepest (expanded) level reached in the current subtree
        self._total = 0      # nodes so far, each alias counting its whole subtree
        self._anchored: dict = {}  # anchor → (expanded size, height)

    def _grow(self, nodes: int, depth: int, mark) -> None:
        self._total += nodes
        self._reach = max(self._reach, depth)
        if depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} "
                                              "levels", mark)
        if self._total > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"more than {MAX_NODES} values "
                                              "(aliases counted each time they are used)", mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self.anchors and event.anchor not in self._anchored:
                raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refers "
                                                  "to a node that contains it", event.start_mark)
            size, height = self._anchored.get(event.anchor, (0, 0))
            self._grow(size, self._depth + height, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        outer_reach, self._reach, before = self._reach, self._depth, self._total
        self._grow(1, self._depth, event.start_mark)
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self._anchored[event.anchor] = (self._total - before, self._reach - self._depth + 1)
        self._depth -= 1
        self._reach = max(outer_reach, self._reach)
        return node

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts
            raise yaml.constructor.ConstructorError(None, None, "integer too long",
                                                    node.start_mark) from None


def _mapping(loader: _Loader, node: yaml.MappingNode) -> SrcDict:
    loader.flatten_mapping(node)
    out = SrcDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be plain text or a number", key_node.start_mark)
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
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def load_text(text: str, filename: str):
    """Parse YAML text; a syntax error becomes a :class:`ZoneInvalid` with its line."""
    if len(text) > MAX_BYTES:
        raise ZoneInvalid([Problem(filename, 1, f"larger than {MAX_BYTES >> 20} MB")])
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ZoneInvalid([Problem(filename, line, f"YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ZoneInvalid([Problem(filename, 1, f"YAML: {exc}")]) from None
