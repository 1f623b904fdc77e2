"""YAML for configs, hardened: one-line errors, no duplicate keys, no alias bombs, a bounded read.

libyaml's parser and emitter are used when PyYAML was built with it (pip wheels are): an ensemble member reads
and writes configs, and they take a tenth of the pure-Python parser's time for the same documents.
"""
from __future__ import annotations

import os
import re
from typing import Any

import yaml

from ..errors import ConfigError

MAX_CONFIG_CHARS = 2 ** 20    # characters read of a config file at most (1 MiB of ASCII)
MAX_YAML_VALUES = 100_000     # values of a config with its aliases expanded: far beyond any real config

YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _decimal_only(loader):
    """The loader without YAML 1.1's base-60 numbers: PyYAML reads ``nx: 1:30`` as 90 and ``t_end: 1:30.0``
    as 90.0; here they stay the text written (and a key wanting a number refuses it in one line)."""
    sexagesimal = (r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+", r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*")
    numbers = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

    def decimal(regexp):
        pattern = regexp.pattern
        for alternative in sexagesimal:
            pattern = pattern.replace(alternative, "")
        return re.compile(pattern, regexp.flags)

    resolvers = {first: [(tag, decimal(regexp) if tag in numbers else regexp) for tag, regexp in entries]
                 for first, entries in loader.yaml_implicit_resolvers.items()}
    return type("DecimalLoader", (loader,), {"yaml_implicit_resolvers": resolvers})


YAML_LOADER = _decimal_only(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read(path: str | os.PathLike, source: str) -> str:
    """The text of a config file, read to MAX_CONFIG_CHARS at most (/dev/zero or a huge file given by mistake
    would otherwise be read until memory runs out); every failure is one ConfigError line."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read(MAX_CONFIG_CHARS + 1)
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file; check the path (configs/ has examples)") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: not UTF-8 text (byte {err.start}); is it a YAML config?") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot read the config: {err.strerror}") from None
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_CHARS // 2 ** 20} MiB, which no config is; "
                          "is it the right file? (a config is a small YAML file, configs/ has examples)")
    return text


class YamlTextError(ConfigError):
    """Text that YAML cannot read as a plain value (a syntax error, a tag, an impossible date): in a ``--set``
    value, most often text that needs quotes."""


def _check_nodes(root, source: str) -> None:
    """Before anything is constructed: no mapping names a key twice (YAML would keep the last silently),
    and aliases do not expand to more than MAX_YAML_VALUES values (an alias bomb)."""
    sizes: dict[int, int] = {}

    def size(node) -> int:          # values once every alias is expanded, each shared node counted once
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1          # a node reached again while being sized (a recursive alias)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise ConfigError(f"{source} (line {key.start_mark.line + 1}): the key {key.value!r} "
                                          f"appears twice in one mapping (also line {seen[key.value]}); "
                                          "keep one of them")
                    seen[key.value] = key.start_mark.line + 1
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        if total > MAX_YAML_VALUES:
            raise ConfigError(f"{source}: the YAML expands to more than {MAX_YAML_VALUES} values (aliases "
                              "repeated inside aliases?); a config is a few sections of plain keys")
        sizes[id(node)] = total
        return total

    size(root)


def safe_load(text: str, source: str) -> Any:
    """yaml.safe_load with every failure as one ConfigError line (PyYAML also raises ValueError for a
    date like 2001-02-30 or ``!!int abc``, KeyError for ``!!bool maybe``, RecursionError for deep nesting).
    Duplicate keys and alias bombs are refused before anything is built (_check_nodes)."""
    try:
        # libyaml takes exact str (or bytes): not the numpy subclasses an HDF5 attribute gives
        loader = YAML_LOADER(bytes(text).decode() if isinstance(text, bytes) else str(text))
        try:
            root = loader.get_single_node()          # parsed once: checked, then built
            if root is None:
                return None
            _check_nodes(root, source)
            return loader.construct_document(root)
        finally:
            loader.dispose()
    except ConfigError:
        raise
    except yaml.constructor.ConstructorError as err:
        line = f" (line {err.problem_mark.line + 1})" if err.problem_mark else ""
        hint = "configs hold plain YAML values only, remove the tag" if "tag" in str(err.problem) \
            else "configs hold plain YAML values only"
        raise YamlTextError(f"{source}{line}: {err.problem}; {hint}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise YamlTextError(f"{source}:{line}: YAML syntax error: {problem}; fix the YAML there") from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply; a config has sections of plain keys") from None
    except (ValueError, KeyError, TypeError, OverflowError) as err:
        problem = (str(err).splitlines() or [type(err).__name__])[0]
        raise YamlTextError(f"{source}: a YAML value cannot be read ({problem}); quote it if it is text, "
                            "or fix it") from None


def parse_yaml(text: str, source: str) -> dict:
    """Safe-load a YAML mapping; syntax errors and Python tags become one-line ConfigErrors."""
    data = safe_load(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config is a mapping of sections (grid:, time:, ...), "
                          f"not a {type(data).__name__}")
    return data


def dump(data: Any) -> str:
    """YAML text of plain data, keys in their order (the provenance's and --dry-run's form of a config)."""
    return yaml.dump(data, Dumper=YAML_DUMPER, sort_keys=False, default_flow_style=None)
