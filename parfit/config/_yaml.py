"""Strict, bounded YAML reading for analysis configs, with the line of every key.

PyYAML follows YAML 1.1, where some plain values do not mean what most
people expect: ``NO``, ``off`` and ``yes`` are booleans, ``12:30`` is the
base-60 integer 750, ``0755`` is octal and ``2024-01-01`` a date.  A config
value that silently changed meaning is worse than an error, so these are
reported as problems (quote them to mean text, or write what YAML 1.2
would read).  ``1e-8`` is read as the float it looks like (YAML 1.1 reads
it as a string).  Duplicate keys are problems too.

A config is plain data: mappings, lists, text, numbers, booleans and null.
Any other tag (``!!python/object``, ``!!binary``, ``!custom``) is refused,
never constructed.  Hostile documents are bounded before they can cost
memory or the stack: at most :data:`MAX_CHARS` characters, nesting at most
:data:`MAX_DEPTH` levels deep, and at most :data:`MAX_VALUES` values once
aliases are expanded ("billion laughs").  The depth is checked while
PyYAML composes the document (its composer is recursive), and the expanded
size of every node is counted there too, before anything is built.
Merge keys (``<<: *defaults``) follow YAML 1.1: the mapping's own keys win
over merged ones, earlier merged mappings over later ones.
"""

import re

import yaml
from yaml.events import AliasEvent

__all__ = ["load_yaml", "Problem", "format_path", "MAX_CHARS", "MAX_DEPTH", "MAX_VALUES"]

#: Longest config text read, in characters (1 MB of ASCII).
MAX_CHARS = 1_000_000
#: Deepest nesting of mappings and lists (a config needs about 6 levels).
MAX_DEPTH = 50
#: Most values (mapping keys, values and list items) in a document, counting
#: each alias as everything its anchor holds.  A config of 200 components with
#: every option written out has about 10,000; PyYAML reads some 10,000 values a
#: second, so the bound also caps the time a hostile document costs.
MAX_VALUES = 20_000

_BOOL_WORDS = {"true", "false"}
_OCTAL = re.compile(r"^[-+]?0[0-9_]+$")
_STD = "tag:yaml.org,2002:"
#: Tags a config may carry (explicitly or by YAML's reading of plain values).
_ALLOWED_TAGS = {
    _STD + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "timestamp")
}
_MERGE_TAG = _STD + "merge"
#: Plain ``=`` (YAML 1.1's "value" key) and a lone ``<<`` outside a key are text.
_TEXT_TAGS = {_STD + "value", _MERGE_TAG}


class Problem(tuple):
    """One problem of a config: ``(path, line, message)``."""

    __slots__ = ()

    def __new__(cls, path, line, message):
        return super().__new__(cls, (tuple(path), line, message))

    @property
    def path(self):
        return self[0]

    @property
    def line(self):
        return self[1]

    @property
    def message(self):
        return self[2]


def format_path(path):
    """``('model', 'components', 1, 'mean')`` -> ``model.components[1].mean``.

    Examples
    --------
    >>> format_path(("model", "components", 1, "mean"))
    'model.components[1].mean'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class _Limit(Exception):
    """A document past one of the bounds; ends the reading with one problem."""

    def __init__(self, path, line, message):
        super().__init__(message)
        self.path, self.line, self.message = tuple(path), line, message


_TOO_MANY = (
    f"the document holds more than {MAX_VALUES:,} values once its aliases are "
    f"expanded (each *alias repeats everything its &anchor holds); a parfit config "
    f"needs far fewer: write the values out, or use fewer aliases"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-8`` as a float and bounds depth and alias expansion.

    While composing, every node gets its expanded size (itself and everything
    below it, aliases included) and its height; a document past
    :data:`MAX_DEPTH` or :data:`MAX_VALUES` stops at the line where it
    passes, before PyYAML's recursive composer can exhaust the stack or an
    alias bomb the memory.  Explicit tags are recorded for :func:`_build`.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._size = {}  # id(node) -> values at and below the node, aliases expanded
        self._height = {}  # id(node) -> levels at and below the node
        self._tags = {}  # id(node) -> the tag written in the document
        self._path = []  # keys and indices down to the node being composed
        self._built = set()  # id(node) of the nodes _build has read once
        self._count = 0  # values composed so far, aliases expanded

    def fetch_flow_collection_start(self, token_class):
        # The scanner reads up to 1,024 characters ahead, keeping a possible key
        # per open [ or { and looking at all of them for every token: a line of
        # open brackets costs seconds before the composer sees the first one,
        # so flow nesting is bounded here too.
        super().fetch_flow_collection_start(token_class)
        if self.flow_level > MAX_DEPTH:
            raise _Limit(
                self._path[:3],
                self.line + 1,
                f"mappings and lists are nested more than {MAX_DEPTH} levels deep; "
                f"a parfit config needs about 6",
            )

    def compose_node(self, parent, index):
        if index is None:  # a mapping key: reported at the mapping
            return self._compose(parent, index)
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        try:
            return self._compose(parent, index)
        finally:
            self._path.pop()

    def _compose(self, parent, index):
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None and id(node) not in self._size:
                raise _Limit(
                    self._path[:3],
                    line,
                    f"the alias *{event.anchor} refers to the mapping or list that "
                    f"contains it (a recursive alias); a config cannot contain itself",
                )
            node = super().compose_node(parent, index)
            self._check(node, line, self._depth + 1)
            self._add(self._size[id(node)], line)
            return node
        self._depth += 1
        self._add(1, line)
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(
                    self._path[:3],
                    line,
                    f"mappings and lists are nested more than {MAX_DEPTH} levels "
                    f"deep; a parfit config needs about 6",
                )
            if getattr(event, "tag", None) not in (None, "!"):
                tag = event.tag
            else:
                tag = None
            node = super().compose_node(parent, index)
            if tag is not None:
                self._tags[id(node)] = tag
            self._check(node, line, self._depth)
            return node
        finally:
            self._depth -= 1

    def _add(self, n, line):
        """Count ``n`` more values; stop as soon as the document passes MAX_VALUES.

        The running count equals the expanded size of the document so far, so
        a long list stops where it passes the bound, not after it was scanned.
        """
        self._count += n
        if self._count > MAX_VALUES:
            raise _Limit(self._path[:3], line, _TOO_MANY)

    def _check(self, node, line, depth):
        """Record (or, for an alias, reuse) the size and height of ``node``; bound both."""
        key = id(node)
        if key not in self._size:
            if isinstance(node, yaml.ScalarNode):
                children = ()
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = [n for pair in node.value for n in pair]
            self._size[key] = 1 + sum(self._size[id(c)] for c in children)
            self._height[key] = 1 + max((self._height[id(c)] for c in children), default=0)
        if self._size[key] > MAX_VALUES:
            raise _Limit(self._path[:3], line, _TOO_MANY)
        if depth - 1 + self._height[key] > MAX_DEPTH:
            raise _Limit(
                self._path[:3],
                line,
                f"mappings and lists are nested more than {MAX_DEPTH} levels deep "
                f"once aliases are expanded; a parfit config needs about 6",
            )


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _short_tag(tag):
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


def _tag_problem(node, loader):
    """Why the tag written on ``node`` is refused, or None."""
    tag = loader._tags.get(id(node))
    if tag is None or node.tag in _ALLOWED_TAGS:
        return None
    short = _short_tag(node.tag)
    why = (
        "it names a Python object, and a config never creates objects"
        if node.tag.startswith(_STD + "python/")
        else "a config holds only plain data"
    )
    return (
        f"the tag {short} is not allowed: {why} (mappings, lists, text, numbers, "
        f"true/false and null); remove the tag"
    )


def _ambiguity(node):
    """Why a plain scalar is ambiguous, or None."""
    if node.style is not None:  # quoted or block scalar: plain text
        return None
    text, tag = node.value, node.tag
    if tag == "tag:yaml.org,2002:bool" and text.lower() not in _BOOL_WORDS:
        meaning = "true" if text.lower() in ("yes", "y", "on") else "false"
        return (
            f"ambiguous value {text}: YAML 1.1 reads it as the boolean {meaning}; "
            f'write {meaning} for a boolean, or quote it ("{text}") for text'
        )
    if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in text:
        return (
            f"ambiguous value {text}: YAML 1.1 reads it as a base-60 number; quote it "
            f'("{text}") for text, or write the number in decimal'
        )
    if tag == "tag:yaml.org,2002:int" and _OCTAL.match(text):
        return (
            f"ambiguous value {text}: YAML 1.1 reads a leading 0 as octal; write it "
            f'without the leading zeros, or quote it ("{text}") for text'
        )
    if tag == "tag:yaml.org,2002:timestamp":
        return f'ambiguous value {text}: YAML reads it as a date; quote it ("{text}") for text'
    return None


def _scalar(node, path, loader, problems):
    """The value of a scalar node (None, with a problem, if it cannot be read)."""
    if node.tag in _TEXT_TAGS:
        return node.value
    try:
        return loader.construct_object(node)
    except (ValueError, OverflowError, yaml.YAMLError) as exc:
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else exc
        problems.append(
            Problem(
                path,
                node.start_mark.line + 1,
                f"cannot read {text!r} as {_short_tag(node.tag)}: {reason}",
            )
        )
        return None


def _build(node, path, loader, lines, problems):
    if id(node) in loader._built:
        # An alias: the node's own problems (tags, duplicates, ambiguous values)
        # were reported where its anchor is, once.
        problems = []
    else:
        loader._built.add(id(node))
    why = _tag_problem(node, loader)
    if why is not None:
        problems.append(Problem(path, node.start_mark.line + 1, why))
        return None
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, path, loader, lines, problems)
    if isinstance(node, yaml.SequenceNode):
        out = []
        for i, item in enumerate(node.value):
            child = path + (i,)
            lines[child] = item.start_mark.line + 1
            out.append(_build(item, child, loader, lines, problems))
        return out
    why = _ambiguity(node)
    if why is not None:
        problems.append(Problem(path, node.start_mark.line + 1, why))
    return _scalar(node, path, loader, problems)


def _build_mapping(node, path, loader, lines, problems):
    out, merges = {}, []
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(Problem(path, line, "mapping keys must be plain names"))
            continue
        if key_node.tag == _MERGE_TAG and key_node.style is None:
            merges.append((line, value_node))
            continue
        why = _tag_problem(key_node, loader)
        if why is not None:
            problems.append(Problem(path, line, why))
            continue
        key = _scalar(key_node, path, loader, problems)
        if not isinstance(key, str):
            key = str(key_node.value)
        child = path + (key,)
        if key in out:
            problems.append(
                Problem(
                    child,
                    line,
                    f"duplicate key {key!r} (first given at line {lines[child]}); each key "
                    f"may appear only once",
                )
            )
            continue
        lines[child] = line
        out[key] = _build(value_node, child, loader, lines, problems)
    for line, value_node in merges:
        why = _tag_problem(value_node, loader)
        if why is not None:
            problems.append(Problem(path, line, why))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                problems.append(
                    Problem(
                        path,
                        line,
                        "a merge key (<<) takes a mapping or a "
                        "list of mappings, such as <<: *defaults",
                    )
                )
                continue
            # The mapping's own keys, then earlier merged mappings, win (YAML 1.1).
            sub_lines, sub_problems = {}, []
            merged = _build(source, path, loader, sub_lines, sub_problems)
            taken = {k for k in merged or () if k not in out}
            for key in taken:
                out[key] = merged[key]
            keep = [
                p for p in sub_problems if len(p.path) <= len(path) or p.path[len(path)] in taken
            ]
            problems.extend(keep)
            lines.update(
                {p: n for p, n in sub_lines.items() if len(p) > len(path) and p[len(path)] in taken}
            )
    return out


def load_yaml(text):
    """Read YAML text into plain Python objects.

    Returns
    -------
    data : object
        The document (``None`` for an empty one).
    lines : dict
        Line (1-based) of every mapping key and sequence item, keyed by its
        path tuple.
    problems : list of Problem
        Syntax errors, duplicate keys, ambiguous values, refused tags, and
        a document past the bounds (:data:`MAX_CHARS`, :data:`MAX_DEPTH`,
        :data:`MAX_VALUES`).

    Examples
    --------
    >>> data, lines, problems = load_yaml("run:\\n  progress: no\\n  ftol: 1e-8\\n")
    >>> data
    {'run': {'progress': False, 'ftol': 1e-08}}
    >>> lines[("run", "ftol")]
    3
    >>> [(format_path(p.path), p.line) for p in problems]
    [('run.progress', 2)]
    """
    lines = {(): 1}
    if len(text) > MAX_CHARS:
        return (
            None,
            lines,
            [
                Problem(
                    (),
                    None,
                    (
                        f"the config is {len(text):,} characters long; parfit reads configs "
                        f"of at most {MAX_CHARS:,} characters: a config describes an analysis, "
                        f"its data belong in the files it names"
                    ),
                )
            ],
        )
    problems = []
    loader = None
    try:
        loader = _Loader(text)  # checks the characters of the text
        node = loader.get_single_node()
        data = None if node is None else _build(node, (), loader, lines, problems)
    except _Limit as exc:
        return None, lines, [Problem(exc.path, exc.line, exc.message)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if (
            exc.context
            and exc.context.startswith("found duplicate anchor")
            and exc.context_mark is not None
        ):
            what = (
                f"{exc.context.split(';')[0]} (first defined at line "
                f"{exc.context_mark.line + 1}); each &anchor name may be defined once"
            )
        return None, lines, [Problem((), line, f"invalid YAML: {what}")]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return (
            None,
            lines,
            [
                Problem(
                    (),
                    line,
                    (
                        f"invalid YAML: the character #x{char:04x} is not allowed in YAML "
                        f"text (is this a text file?)"
                    ),
                )
            ],
        )
    except yaml.YAMLError as exc:
        return None, lines, [Problem((), None, f"invalid YAML: {exc}")]
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines, problems
