"""Hostile and malformed configs (issue 11, item 5): bounded, refused with file:line.

Every case here was either a crash (RecursionError, out of memory, a bare
traceback) or a silent acceptance before the hardening; each now ends in one
:class:`parfit.errors.ConfigError` naming the file, the line and the YAML
path, from Python and from the ``parfit`` command (exit code 2, no traceback
without ``--debug``).
"""

import pickle
import re

import pytest
from click.testing import CliRunner

from parfit.analysis import Analysis
from parfit.cli import main
from parfit.config import _yaml, load_config, parse_config
from parfit.config.schema import MAX_COMPONENTS
from parfit.errors import ConfigError, InputTypeError

HEAD = "input: {path: cube.fits}\noutput: {path: out}\n"
ONE_GAUSSIAN = "model: {components: [{type: Gaussian1D}]}\n"

LAUGHS = (
    "the document holds more than 20,000 values once its aliases are expanded (each "
    "*alias repeats everything its &anchor holds); a parfit config needs far fewer: write "
    "the values out, or use fewer aliases"
)
TOO_DEEP = "mappings and lists are nested more than 50 levels deep; a parfit config needs about 6"


def problems_of(text, source="fit.yaml"):
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=source, check_files=False)
    return info.value.problems


def billion_laughs(levels=9):
    """The classic: each level lists the previous one nine times (9**9 strings; ~1 kB)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def nested(depth):
    return "input: " + "[" * depth + "]" * depth + "\n"


# --- bounds ---------------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_the_line_where_it_passes_the_bound():
    text = billion_laughs()
    assert len(text) < 1100
    # The levels above hold about 8,300 values; the second *a3 of a4 (line 5) passes 20,000.
    assert problems_of(text) == [("a4[1]", 5, LAUGHS)]


def test_alias_bomb_through_merge_keys_is_refused():
    # Each mapping merges the previous one twice: the values double at every level.
    lines = ["m0: &m0 {k: 1, j: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}" for i in range(1, 25)]
    assert problems_of("\n".join(lines) + "\n") == [("m10.<<[1]", 11, LAUGHS)]


def test_5000_levels_of_flow_nesting_are_refused_before_the_composer_recurses():
    # Stopped by the scanner at the 51st open bracket, before it looks further ahead.
    assert problems_of(nested(5000)) == [("input", 1, TOO_DEEP)]


def test_block_nesting_is_refused_at_the_line_of_the_51st_level():
    text = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x\n"
    assert problems_of(text) == [(("k0.k1.k2"), 50, TOO_DEEP)]


def test_nesting_through_aliases_counts_the_expanded_depth():
    text = "a: &a " + "[" * 30 + "1" + "]" * 30 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    assert problems_of(text) == [
        (
            "b[0][0]",
            2,
            "mappings and lists are nested more than 50 "
            "levels deep once aliases are expanded; a parfit config "
            "needs about 6",
        )
    ]


@pytest.mark.parametrize(
    "text, path",
    [
        ("input: &a {path: cube.fits, again: *a}\n", "input.again"),
        ("a: &a [1, *a]\n", "a[1]"),
    ],
)
def test_a_recursive_alias_is_refused(text, path):
    assert problems_of(text) == [
        (
            path,
            1,
            "the alias *a refers to the mapping or list that "
            "contains it (a recursive alias); a config cannot contain "
            "itself",
        )
    ]


def test_5000_components_are_refused_before_the_model_is_built():
    comps = "".join("    - {type: Gaussian1D}\n" for _ in range(5000))
    text = HEAD + "model:\n  components:\n" + comps
    assert problems_of(text) == [
        (
            "model.components",
            4,
            (
                "5000 components; a config's model sums at most 200 (a per-pixel fit of more is not "
                "meaningful): fit fewer components"
            ),
        )
    ]
    # The same from a dict, without YAML.
    data = {
        "input": {"path": "c.fits"},
        "output": {"path": "o"},
        "model": {"components": [{"type": "Const1D"}] * (MAX_COMPONENTS + 1)},
    }
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"model.components: {MAX_COMPONENTS + 1} components; a config's model sums at "
            f"most {MAX_COMPONENTS}"
        ),
    ):
        Analysis(data)


def test_the_largest_allowed_config_is_within_every_bound():
    # 200 components with every parameter key written out: about 7,800 values.
    param = '{value: 1, unit: "km/s", bounds: [0, 10], fixed: false}'
    comps = "".join(
        f"    - {{type: Gaussian1D, name: g{i}, mean: {param}, stddev: {param}, "
        f"amplitude: {{value: 1, bounds: [0, null], fixed: false}}}}\n"
        for i in range(MAX_COMPONENTS)
    )
    cfg = parse_config(HEAD + "model:\n  components:\n" + comps, check_files=False)
    assert len(cfg.model.components) == MAX_COMPONENTS
    assert cfg.model.components[-1].stddev.bounds == [0.0, 10.0]


def test_a_huge_polynomial_degree_is_refused_before_it_is_built():
    text = HEAD + "model: {components: [{type: Polynomial1D, degree: 10000000}]}\n"
    assert problems_of(text) == [
        (
            "model.components[0]",
            3,
            (
                "degree 10000000 of Polynomial1D is larger than a config allows (1000); it would "
                "build a model with that many parameters"
            ),
        )
    ]


def test_size_limits_of_text_and_of_files(tmp_path):
    text = HEAD + ONE_GAUSSIAN + "#" * _yaml.MAX_CHARS + "\n"
    assert problems_of(text) == [
        (
            "(top level)",
            None,
            (
                f"the config is {len(text):,} characters long; parfit reads configs of at most "
                f"1,000,000 characters: a config describes an analysis, its data belong in the files "
                f"it names"
            ),
        )
    ]
    big = tmp_path / "big.yaml"
    big.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(big, check_files=False)
    assert str(info.value) == (
        f"config file {str(big)!r} is larger than 1,000,000 bytes; parfit reads configs of "
        f"at most 1 MB: a config describes an analysis, its data belong in the files it names"
    )


# --- tags -----------------------------------------------------------------------------------

PYTHON = (
    "is not allowed: it names a Python object, and a config never creates objects "
    "(mappings, lists, text, numbers, true/false and null); remove the tag"
)
PLAIN = (
    "is not allowed: a config holds only plain data (mappings, lists, text, numbers, "
    "true/false and null); remove the tag"
)


@pytest.mark.parametrize(
    "text, path, tag, why",
    [
        # The survey's case: a tag on a mapping was silently ignored.
        (
            "input: !!python/object:os.system {path: cube.fits}\n",
            "input",
            "!!python/object:os.system",
            PYTHON,
        ),
        (
            "model: {components: [{type: !!python/name:os.system Gaussian1D}]}\n",
            "model.components[0].type",
            "!!python/name:os.system",
            PYTHON,
        ),
        (
            "model: !!python/object/apply:os.system [echo hi]\n",
            "model",
            "!!python/object/apply:os.system",
            PYTHON,
        ),
        (
            "model: {components: [{!!python/str type: Gaussian1D}]}\n",
            "model.components[0]",
            "!!python/str",
            PYTHON,
        ),
        (
            "model: {components: [{type: !!binary R2F1c3NpYW4xRA==}]}\n",
            "model.components[0].type",
            "!!binary",
            PLAIN,
        ),
        ("model: !!set {components: [{type: Gaussian1D}]}\n", "model", "!!set", PLAIN),
        ("model: !custom {components: [{type: Gaussian1D}]}\n", "model", "!custom", PLAIN),
    ],
)
def test_tags_beyond_plain_data_are_refused(text, path, tag, why):
    head = "output: {path: out}\n" + (
        ONE_GAUSSIAN if text.startswith("input") else "input: {path: cube.fits}\n"
    )
    assert problems_of(head + text) == [(path, 3, f"the tag {tag} {why}")]


def test_a_tag_hidden_behind_a_tag_directive_is_refused():
    text = (
        "%TAG !p! tag:yaml.org,2002:python/\n---\n"
        + HEAD
        + "model: !p!object:os.system {components: [{type: Gaussian1D}]}\n"
    )
    assert problems_of(text) == [("model", 5, f"the tag !!python/object:os.system {PYTHON}")]


def test_standard_tags_of_plain_data_are_read():
    cfg = parse_config(
        HEAD + "model: !!map {components: [{type: !!str Gaussian1D, amplitude: !!float 2}]}\n",
        check_files=False,
    )
    assert cfg.model.components[0].amplitude.value == 2.0
    assert problems_of(
        HEAD + "model: {components: [{type: Gaussian1D, amplitude: !!float abc}]}\n"
    ) == [
        (
            "model.components[0].amplitude",
            3,
            "cannot read 'abc' as !!float: could not convert string to float: 'abc'",
        )
    ]


# --- malformed documents --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", 1, "the config is empty; start from `parfit config`"),
        ("# only a comment\n", 1, "the config is empty; start from `parfit config`"),
        (
            "just text\n",
            1,
            "the config must be a mapping of the sections input, model, fitter, "
            "likelihood, strategy, run, diagnostics, output",
        ),
        (
            "- input\n- model\n",
            1,
            "the config must be a mapping of the sections input, model, "
            "fitter, likelihood, strategy, run, diagnostics, output",
        ),
        (
            "input: {path: c.fits}\x00\n",
            1,
            "invalid YAML: the character #x0000 is not allowed in YAML text (is this a text file?)",
        ),
        (
            "a: 1\n---\nb: 2\n",
            2,
            "invalid YAML: expected a single document in the stream but found another document",
        ),
        (
            "a: &x 1\nb: &x 2\n",
            2,
            "invalid YAML: found duplicate anchor 'x' (first defined at "
            "line 1); each &anchor name may be defined once",
        ),
        ("a: *nowhere\n", 1, "invalid YAML: found undefined alias 'nowhere'"),
    ],
)
def test_documents_that_are_not_a_config(text, line, message):
    assert problems_of(text) == [("(top level)", line, message)]


def test_parse_config_takes_text_only():
    with pytest.raises(
        InputTypeError,
        match=re.escape(
            "parse_config(text) takes the YAML text as a str; got bytes; use "
            "load_config(path) to read a file"
        ),
    ):
        parse_config(HEAD.encode(), check_files=False)


def test_binary_and_non_utf8_files_and_folders(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(HEAD.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(latin, check_files=False)
    assert str(info.value) == (
        f"cannot read config file {str(latin)!r}: latin.yaml:3: is not UTF-8 text: byte 0xe9 "
        f"at line 3 cannot be decoded; save the file as UTF-8"
    )
    assert info.value.problems == [
        (
            "(file)",
            3,
            "is not UTF-8 text: byte 0xe9 at line 3 cannot be decoded; save the file as UTF-8",
        )
    ]
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(1, 32)) * 4)  # valid UTF-8, not YAML text
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "garbage.yaml:1: (top level): invalid YAML: the character #x0001 is not allowed"
        ),
    ):
        load_config(garbage, check_files=False)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, check_files=False)
    assert str(info.value) == f"config file {str(tmp_path)!r} is a folder; give the YAML file in it"


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, path, message",
    [
        (
            "9" * 5000,
            "model.components[0].amplitude",
            "cannot read '9999999999999999999999999999999999999...' as !!int: Exceeds the limit "
            "(4300 digits) for integer string conversion: value has 5000 digits; use "
            "sys.set_int_max_str_digits() to increase the limit",
        ),
        (
            "9" * 400,
            "model.components[0].amplitude",
            "value 99999999... (400 digits) is too large for a floating-point number (at most about "
            "1.8e308)",
        ),
        (
            "{value: 1, bounds: [0, " + "9" * 400 + "]}",
            "model.components[0].amplitude.bounds",
            "bound 99999999... (400 digits) is too large for a floating-point number (at most about "
            "1.8e308)",
        ),
        (
            ".nan",
            "model.components[0].amplitude",
            "starting value nan is not finite; give a finite number (per-pixel maps may contain NaN)",
        ),
        (
            "1e999",
            "model.components[0].amplitude",
            "starting value inf is not finite; give a finite number (per-pixel maps may contain NaN)",
        ),
    ],
)
def test_huge_and_non_finite_numbers(value, path, message):
    text = HEAD + f"model: {{components: [{{type: Gaussian1D, amplitude: {value}}}]}}\n"
    assert problems_of(text) == [(path, 3, message)]


def test_merge_keys_follow_yaml_and_their_problems_are_reported_once():
    text = HEAD + (
        "model:\n"
        "  components:\n"
        "    - &g {type: Gaussian1D, mean: 1, stddev: {value: 2, fixed: true}}\n"
        "    - {<<: *g, mean: 5}\n"
    )
    cfg = parse_config(text, check_files=False)
    second = cfg.model.components[1]
    assert (second.type, second.mean.value, second.stddev.value, second.stddev.fixed) == (
        "Gaussian1D",
        5.0,
        2.0,
        True,
    )
    # A duplicate key inside an anchor is reported at the anchor, not once per alias.
    dup = HEAD + ("defaults: &d {type: Gaussian1D, type: Const1D}\nmodel: {components: [*d, *d]}\n")
    found = problems_of(dup)
    assert [p for p in found if "duplicate" in p[2]] == [
        (
            "defaults.type",
            3,
            "duplicate key 'type' (first given at line 3); each key may appear only once",
        )
    ]
    # Earlier merged mappings win over later ones; a refused tag is refused there too.
    data, _, found = _yaml.load_yaml(
        "d: &d {a: 1, c: 3}\ne: &e {a: 9, f: 1}\n"
        "m: {<<: [*d, *e], b: 2, c: 4}\n"
        "n: {<<: !!python/tuple [*d], b: 2}\n"
    )
    assert data["m"] == {"a": 1, "b": 2, "c": 4, "f": 1} and data["n"] == {"b": 2}
    assert found == [(("n",), 4, f"the tag !!python/tuple {PYTHON}")]
    assert problems_of(HEAD + "model: {<<: 3, components: [{type: Gaussian1D}]}\n") == [
        (
            "model",
            3,
            "a merge key (<<) takes a mapping or a list of mappings, such as <<: *defaults",
        )
    ]


def test_config_errors_with_limits_survive_pickling():
    with pytest.raises(ConfigError) as info:
        parse_config(billion_laughs(), source="lol.yaml", check_files=False)
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) and back.problems == [("a4[1]", 5, LAUGHS)]


# --- the Python entry points and the command ------------------------------------------------

HOSTILE = {
    "laughs.yaml": (billion_laughs(), f"laughs.yaml:5: a4[1]: {LAUGHS}"),
    "deep.yaml": (nested(1000), f"deep.yaml:1: input: {TOO_DEEP}"),
    "tagged.yaml": (
        "input: !!python/object:os.system {path: cube.fits}\n"
        + ONE_GAUSSIAN
        + "output: {path: out}\n",
        f"tagged.yaml:1: input: the tag !!python/object:os.system {PYTHON}",
    ),
    "many.yaml": (
        HEAD
        + "model:\n  components:\n"
        + "".join("    - {type: Gaussian1D}\n" for _ in range(1000)),
        "many.yaml:4: model.components: 1000 components; a config's model sums at "
        "most 200 (a per-pixel fit of more is not meaningful): fit fewer components",
    ),
}


@pytest.fixture
def hostile(tmp_path):
    for name, (text, _) in HOSTILE.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_analysis_from_yaml_and_load_config_raise_config_error(hostile, name):
    for read in (Analysis.from_yaml, lambda p: load_config(p, check_files=False)):
        with pytest.raises(ConfigError) as info:
            read(hostile / name)
        assert str(info.value) == f"1 problem in {hostile / name}:\n  {hostile}/{HOSTILE[name][1]}"


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("command", [["validate"], ["validate", "--no-input"], ["run"]])
def test_the_command_prints_one_problem_and_exits_2_without_a_traceback(
    hostile, monkeypatch, name, command
):
    monkeypatch.chdir(hostile)
    out = CliRunner().invoke(main, [*command, name])
    assert out.exit_code == 2, out.output
    assert out.stderr == f"1 problem in {name}:\n  {HOSTILE[name][1]}\n"
    assert out.stdout == ""
    assert "Traceback" not in out.output
    assert not (hostile / "out").exists()  # `run` refused before creating anything


def test_debug_shows_the_traceback_and_keeps_the_exit_code(hostile, monkeypatch):
    monkeypatch.chdir(hostile)
    out = CliRunner().invoke(main, ["--debug", "validate", "laughs.yaml"])
    assert out.exit_code == 2
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.endswith(f"1 problem in laughs.yaml:\n  {HOSTILE['laughs.yaml'][1]}\n")


def test_the_command_on_a_folder_a_missing_file_and_a_non_utf8_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["validate", "."])
    assert out.exit_code == 2 and "is a directory" in out.stderr
    assert "Traceback" not in out.output
    out = CliRunner().invoke(main, ["validate", "absent.yaml"])
    assert (out.exit_code, out.stderr) == (2, "config file 'absent.yaml' does not exist\n")
    (tmp_path / "latin.yaml").write_bytes(b"input: {path: caf\xe9.fits}\n")
    out = CliRunner().invoke(main, ["run", "latin.yaml"])
    assert (out.exit_code, out.stderr) == (
        2,
        (
            "cannot read config file 'latin.yaml': latin.yaml:1: is not UTF-8 text: byte 0xe9 at "
            "line 1 cannot be decoded; save the file as UTF-8\n"
        ),
    )


def test_an_unexpected_error_is_one_line_without_debug(tmp_path, monkeypatch):
    import parfit.config

    def broken(*args, **kwargs):
        raise RuntimeError("something parfit did not expect")

    monkeypatch.setattr(parfit.config, "load_config", broken)
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["validate", "fit.yaml"])
    assert out.exit_code == 1
    assert out.stderr == (
        "internal error: RuntimeError: something parfit did not expect\n"
        "(this is a bug in parfit: please report it with the output of "
        "parfit --debug ...)\n"
    )
    out = CliRunner().invoke(main, ["--debug", "validate", "fit.yaml"])
    assert out.exit_code == 1 and "Traceback (most recent call last)" in out.stderr
