"""Strict YAML reading for analysis configs, with the line of every key.

PyYAML follows YAML 1.1, where some plain values do not mean what most
people expect: ``NO``, ``off`` and ``yes`` are booleans, ``12:30`` is the
base-60 integer 750, ``0755`` is octal and ``2024-01-01`` a date.  A config
value that silently changed meaning is worse than an error, so these are
reported as problems (quote them to mean text, or write what YAML 1.2
would read).  ``1e-8`` is read as the float it looks like (YAML 1.1 reads
it as a string).  Duplicate keys are problems too; nothing outside YAML's
safe subset is ever constructed.
"""

import re

import yaml

__all__ = ["load_yaml", "Problem", "format_path"]

_BOOL_WORDS = {"true", "false"}
_OCTAL = re.compile(r"^[-+]?0[0-9_]+$")


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
    """``('model', 'components', 1, 'mean')`` -> ``model.components[1].mean``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-8`` and ``2E5`` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _ambiguity(node):
    """Why a plain scalar is ambiguous, or None."""
    if node.style is not None:  # quoted or block scalar: plain text
        return None
    text, tag = node.value, node.tag
    if tag == "tag:yaml.org,2002:bool" and text.lower() not in _BOOL_WORDS:
        meaning = "true" if text.lower() in ("yes", "y", "on") else "false"
        return (f"ambiguous value {text}: YAML 1.1 reads it as the boolean {meaning}; "
                f"write {meaning} for a boolean, or quote it (\"{text}\") for text")
    if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in text:
        return (f"ambiguous value {text}: YAML 1.1 reads it as a base-60 number; quote it "
                f"(\"{text}\") for text, or write the number in decimal")
    if tag == "tag:yaml.org,2002:int" and _OCTAL.match(text):
        return (f"ambiguous value {text}: YAML 1.1 reads a leading 0 as octal; write it "
                f"without the leading zeros, or quote it (\"{text}\") for text")
    if tag == "tag:yaml.org,2002:timestamp":
        return (f"ambiguous value {text}: YAML reads it as a date; quote it (\"{text}\") "
                f"for text")
    return None


def _build(node, path, loader, lines, problems):
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(path, line, "mapping keys must be plain names"))
                continue
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key_node.value)
            child = path + (key,)
            if key in out:
                problems.append(Problem(
                    child, line,
                    f"duplicate key {key!r} (first given at line {lines[child]}); each key "
                    f"may appear only once",
                ))
                continue
            lines[child] = line
            out[key] = _build(value_node, child, loader, lines, problems)
        return out
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
    return loader.construct_object(node)


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
        Syntax errors, duplicate keys and ambiguous values.
    """
    loader = _Loader(text)
    lines = {(): 1}
    problems = []
    try:
        node = loader.get_single_node()
        data = None if node is None else _build(node, (), loader, lines, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, lines, [Problem((), line, f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return None, lines, [Problem((), None, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, lines, problems
