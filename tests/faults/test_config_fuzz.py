"""Property-based fuzzing of the config loader: whatever YAML or overrides come in, the only outcomes are a
valid Config or one ConfigError line. Any other exception (TypeError, RecursionError, OverflowError, ...)
is a bug that would reach the user as a traceback.
"""
from __future__ import annotations

import math
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.core import config
from solver.core.config import Config, ConfigError

SECTIONS = {section: list(keys) for section, keys in Config().to_dict().items() if isinstance(keys, dict)}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.integers(-5, 2000),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-6, 10.0),
    st.text(max_size=12), st.sampled_from(["auto", "numba", "numpy", "uniform", "normal", "dist", "~", "1e-3",
                                           "0x10", "1_000", ".inf", "-.nan", "yes", "off", "2001-01-01"]),
    st.binary(max_size=4),
)
keys = st.one_of(st.text(max_size=6), st.integers(), st.none(), st.booleans(), st.floats())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=8)
known_keys = st.sampled_from([f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys])
any_keys = st.one_of(known_keys, st.text(max_size=15), known_keys.map(lambda k: k + ".x"),
                     st.sampled_from(list(SECTIONS)))


# Values of the right type, over their whole range (tiny, huge, negative, zero): these get past the type
# checks and into the range checks and derived quantities (dx, steps, stability), where overflows hide.
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(1e-320, 1e-290),
                    st.floats(1e290, 1e308), st.floats(-3.0, 3.0), st.integers(-10**400, 10**400))
counts = st.one_of(st.integers(-3, 5000), st.integers(-10**400, 10**400), st.just(3))
pairs = st.lists(numbers, min_size=2, max_size=2)
perturb_specs = st.dictionaries(
    st.one_of(known_keys, st.text(max_size=8)),
    st.one_of(values, st.fixed_dictionaries({"dist": st.sampled_from(["uniform", "normal", "lognormal", "choice",
                                                                       "bogus"])},
                                            optional={"low": values, "high": values, "mean": values,
                                                      "std": values, "sigma": values, "values": values})),
    max_size=2)
TYPED = {"nx": counts, "ny": counts, "x": pairs, "y": pairs, "center": pairs, "diffusivity": numbers,
         "sigma": numbers, "amplitude": numbers, "dt": numbers, "t_end": numbers, "every": counts,
         "halo": counts, "seed": counts, "members": counts, "threads": st.one_of(counts, st.just("auto")),
         "ranks": st.one_of(st.lists(counts, min_size=2, max_size=2), st.just("auto")),
         "kernel": st.sampled_from(["numba", "numpy", "numbaa", ""]), "path": st.text(max_size=10),
         "output_dir": st.text(max_size=10), "perturb": perturb_specs,
         **dict.fromkeys(("west", "east", "south", "north"),
                         st.sampled_from(["fixed", "zero_flux", "periodic", "periodc", ""])),
         "precision": st.sampled_from(["float64", "float32", "float16", ""]),
         "compression": st.sampled_from(["none", "gzip", "zlib"]), "compression_level": counts,
         "shuffle": st.booleans(), "subsample": st.lists(counts, min_size=2, max_size=2),
         "window": st.dictionaries(st.sampled_from(["x", "y", "z"]), pairs, max_size=2),
         "probes": st.dictionaries(st.text(max_size=6), pairs, max_size=3), "probe_every": counts,
         "series_every": counts}


@st.composite
def documents(draw):
    """A config-shaped mapping (known sections and keys, typed or wild values), or anything at all."""
    if draw(st.integers(0, 3)):
        doc = {}
        for section in draw(st.lists(st.sampled_from(list(SECTIONS)), max_size=4, unique=True)):
            keys = draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=3, unique=True))
            doc[section] = {key: draw(TYPED[key] if draw(st.integers(0, 4)) else values) for key in keys}
        return doc
    return draw(values)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)   # files hold encodable text
raw_yaml = st.one_of(
    text,
    st.lists(st.sampled_from(["grid:", "  nx: 5", "- 1", "!!python/object:os.system", "&a [*a]", "{", "}",
                              "? [a, b]\n: 1", "!!binary AAAA", "!!set {a}", "!!omap [a: 1]", "<<: *a", "---",
                              "time: {dt: !!float 1e-3}", "\t", "grid: !!str 5", "%YAML 1.1", "'", "*x",
                              "physics: {diffusivity: 1e-3}", "a: &x 1\nb: *x", "!custom 1", "...",
                              "grid: {x: [0, 1e309]}", "a: 2001-02-30", "time: {dt: !!int abc}",
                              "x: !!bool maybe", "[[[[[[[[[[", "time: {t_end: 1e3, dt: 1.0e-2}",
                              "grid: {nx: 0x10, ny: 1_000}", "output: {every: 190:20:30}", "\x00",
                              "grid: {nx: 99999999999999999999999}", "? [1, 2]\n: 3", "{[1]: 2}"]),
             max_size=6).map("\n".join),
)
override_values = st.sampled_from(["2001-02-30", "!!int abc", "!!bool maybe", "[[[[", "1e-3", "1.0e400",
                                   "{dist: uniform, low: 0, high: [1]}", "[1e308, -1e308]", "'\n'", "\ud800"])
overrides = st.lists(st.one_of(
    st.tuples(known_keys, override_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.tuples(any_keys, st.one_of(st.text(max_size=20), values.map(lambda v: yaml.safe_dump(v).strip()
                                                                    if _dumpable(v) else "x")))
    .map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=25)), max_size=3)


def _dumpable(v) -> bool:
    try:
        yaml.safe_dump(v)
        return True
    except Exception:
        return False


def check_outcome(outcome):
    """A Config that is really valid, or nothing (the ConfigError was caught)."""
    if outcome is None:
        return
    assert isinstance(outcome, Config)
    config.validate(outcome)
    assert outcome.nsteps >= 1 and outcome.stability <= 1.0
    assert all(math.isfinite(v) for v in (outcome.dx, outcome.dy, outcome.time.dt))
    again = config.from_dict(config.parse_yaml(outcome.to_yaml(), "round trip"), "round trip")
    assert again.to_yaml() == outcome.to_yaml()     # (text: a perturb parameter may be nan)


def only_config_errors(function, *args):
    try:
        return function(*args)
    except ConfigError as err:
        message = str(err)
        assert message and "\n" not in message, f"not one line: {message!r}"
        return None


# 250 examples per property keep the suite fast; FUZZ_EXAMPLES=5000 digs deeper by hand.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 250)), deadline=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(documents(), overrides)
def test_from_dict_and_overrides_give_a_config_or_one_line(doc, items):
    def build():
        data = doc
        if not isinstance(data, dict):
            data = config.parse_yaml(yaml.safe_dump(data), "fuzz") if _dumpable(data) else {}
        for item in items:
            config.set_dotted(data, item)
        return config.from_dict(data, "fuzz")
    check_outcome(only_config_errors(build))


@FUZZ
@given(raw_yaml, overrides)
def test_load_of_random_yaml_text_gives_a_config_or_one_line(tmp_path_factory, text, items):
    path = tmp_path_factory.getbasetemp() / "fuzz-text.yaml"
    path.write_text(text, encoding="utf-8")
    check_outcome(only_config_errors(config.load, path, items))


@FUZZ
@given(documents())
def test_yaml_dump_of_random_documents_loads_cleanly(tmp_path_factory, doc):
    if not _dumpable(doc):
        return
    path = tmp_path_factory.getbasetemp() / "fuzz-doc.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    check_outcome(only_config_errors(config.load, path, []))


def test_deeply_nested_yaml_is_one_line(tmp_path):
    """Nesting deeper than Python's recursion limit (PyYAML recurses per level): one line, not a crash.
    Kept out of the fuzz strategies: near the recursion limit the outcome depends on the caller's stack."""
    path = tmp_path / "deep.yaml"
    for depth in (300, 5000):
        path.write_text("[" * depth + "\ngrid:\n")
        check_outcome(only_config_errors(config.load, path, []))
        check_outcome(only_config_errors(config.load, None, ["grid.nx=" + "[" * depth]))


@pytest.mark.parametrize("text", ["time: {dt: 2001-02-30}", "grid: {nx: !!int abc}", "grid: {nx: !!bool maybe}",
                                  "grid: {nx: !!float x}", "output: {every: !!timestamp 2001-13-45}"])
def test_yaml_values_pyyaml_cannot_construct(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="cannot be read"):
        config.load(path)


def test_not_utf8_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"grid: {nx: \xff\xfe}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(path)


@pytest.mark.parametrize("text, dt", [("1e-3", 1e-3), ("1.0e-3", 1e-3), ("5E-4", 5e-4), ("+1e-3", 1e-3)])
def test_exponent_numbers_yaml_1_1_reads_as_text_are_numbers(text, dt):
    """PyYAML (YAML 1.1) reads 1e-3 as a string; a config means the number."""
    assert config.load(None, [f"time.dt={text}", "time.t_end=0.5"]).time.dt == dt
