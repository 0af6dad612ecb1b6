"""The machinery of the typed configs: fields (`option`, `same_option`), validation, YAML loading and
`resolve_config`. The configs themselves live beside it, one module per command.

Each config is a dataclass whose fields carry `help`, and optionally `choices` (a list, or a
callable returning one, for registry-backed names) and bounds. YAML files and command-line
flags both land in the same dataclass through `resolve_config`: defaults < YAML < flags, and
everything is checked before any work starts. Errors name a value by where it came from: the
flag (`--mix-where`) or the key in its YAML file (`config key 'mix_where' in c.yaml`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..errors import ConfigError
from ..registry import suggest


# The panels of `--help`, in the order shown; a field's `panel` names one ("Common": the options most
# runs set, shown first).
PANELS = ("Common", "Data", "Model", "Mixing", "Optimization", "Speed", "Run")


def option(default: Any, help: str, *, choices: Union[list, Callable[[], list], None] = None,
           min: Optional[float] = None, max: Optional[float] = None, min_exclusive: bool = False,
           cli: bool = True, panel: Optional[str] = None, shown_default: Optional[str] = None,
           choice_names: Optional[list] = None, path: Optional[str] = None,
           must_exist: Union[bool, str] = False, env: Optional[str] = None, env_root: Optional[str] = None) -> Any:
    """A config field: its default, its help text, and what values it accepts.

    For `--help`: `panel` (one of PANELS); `shown_default`, the default to show where the value is
    None because it is decided at run time ("auto"); `choice_names`, the names to list where
    `choices` is a callable (calling it imports torch, seconds too slow for --help; a test keeps
    them equal). `path` is "file" or "dir"; `must_exist` (True, or a hint for the error) refuses a
    path that does not exist, first, before anything imports torch. `env` names the environment
    variable that sets a new config's value (mixup_cli/env.py: defaults < YAML < env < flags);
    `env_root` one that the default depends on (MIXUP_RUNS_DIR for run directories); --help shows either."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive, "cli": cli,
            "panel": panel, "shown_default": shown_default, "choice_names": choice_names, "path": path,
            "must_exist": must_exist, "env": env, "env_root": env_root}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def same_option(cls: type, name: str, default: Any = dataclasses.MISSING, **changes: Any) -> Any:
    """A field declared like `cls`'s `name` (help, choices, limits; its default unless `default` is
    given), for a config that passes the value on; `changes` replace entries of its metadata (`panel`)."""
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = {**source.metadata, "shown_default": None, **changes} if default is not dataclasses.MISSING \
        else {**source.metadata, **changes}  # a default of its own is shown as itself
    if default is dataclasses.MISSING:
        if source.default_factory is not dataclasses.MISSING:
            return dataclasses.field(default_factory=source.default_factory, metadata=meta)
        default = source.default
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_type(cls: type, name: str) -> Any:
    return _type_hints(cls)[name]


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict:
    # Resolving `from __future__` string annotations evaluates every field; once per class, not per
    # lookup, keeps `mixup --help` and every validation fast (about 40 ms saved at start-up).
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


_PLURALS = {int: "integers", float: "numbers", str: "names"}


def _describe(annotation: Any) -> str:
    base, _ = _base_type(annotation)
    origin = typing.get_origin(base)
    if origin is list:
        item = typing.get_args(base)[0]
        return f"a comma-separated list of {_PLURALS.get(item, item.__name__)}"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(base, str(base))


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check one value against its field's type, converting only where no information is lost."""
    base, nullable = _base_type(annotation)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"config key '{key}' must be {_describe(annotation)}, not empty")
    origin = typing.get_origin(base)

    def wrong() -> ConfigError:  # built only on error: the repr of a large value costs time and memory
        return ConfigError(f"config key '{key}' must be {_describe(annotation)}, got {_short_repr(value)}")

    if origin is list:
        (item_type,) = typing.get_args(base)
        if isinstance(value, str):  # "100,150" from a flag or YAML
            value = _split_list(key, value)
        elif not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return [_coerce(key, _parse_scalar(v, item_type), item_type) for v in value]
        except ConfigError:
            raise wrong() from None
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return dict(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise wrong()
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        return float(value)
    if base is str:
        if not isinstance(value, (str, Path)):
            raise wrong()
        return str(value)
    return value


def _short_repr(value: Any, limit: int = 200) -> str:
    """repr(value) for an error message, cut to about `limit` characters (reprlib: never the whole of a huge value)."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlevel = limit, limit, 3
    text = short.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _split_list(key: str, text: str) -> list[str]:
    """'0,1,2' -> ['0', '1', '2']; '' is the empty list. An empty item ('0,,1', '0,') is a typo that
    would silently shrink a grid of seeds, so it is refused."""
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        return []
    if "" in items:
        raise ConfigError(f"config key '{key}' has an empty item in {text!r}; separate the values by single "
                          f"commas, e.g. {','.join(i for i in items if i) or '0,1'}")
    return items


def _parse_scalar(value: Any, item_type: type) -> Any:
    if isinstance(value, str) and item_type in (int, float):
        try:
            return item_type(value)
        except ValueError:
            try:
                as_float = float(value)
            except ValueError:
                return value
            return int(as_float) if item_type is int and as_float.is_integer() else value
    return value


def _check_range(key: str, value: Any, meta: dict) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"config key '{key}' must be a finite number, got {v}")
        low, high = meta.get("min"), meta.get("max")
        if low is not None:
            if meta.get("min_exclusive") and v <= low:
                raise ConfigError(f"config key '{key}' must be greater than {low}, got {v}")
            if not meta.get("min_exclusive") and v < low:
                raise ConfigError(f"config key '{key}' must be at least {low}, got {v}")
        if high is not None and v > high:
            raise ConfigError(f"config key '{key}' must be at most {high}, got {v}")


def choices_of(meta: dict) -> Optional[list]:
    choices = meta.get("choices")
    return choices() if callable(choices) else choices


def _check_choice(key: str, value: Any, meta: dict) -> None:
    allowed = choices_of(meta)
    if allowed is None or value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v not in allowed:
            names = [str(a) for a in allowed]
            raise ConfigError(
                f"config key '{key}' has no choice {v!r}{suggest(str(v), names)}; choose one of: {', '.join(names)}"
            )


def _check_paths(config: Any) -> None:
    """Fields that name an existing file or folder; first, since the other checks import torch."""
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), f.metadata.get("must_exist")
        if not hint or not isinstance(value, (str, Path)) or not str(value):
            continue
        if getattr(config, "download", False) is True and f.metadata.get("path") == "dir":
            continue  # --download creates the folder
        kind = "folder" if f.metadata.get("path") == "dir" else "file"
        found = Path(value).is_dir() if kind == "folder" else Path(value).is_file()
        if not found:
            where = f"; {hint}" if isinstance(hint, str) else ""
            raise ConfigError(f"config key '{f.name}': {kind} '{value}' does not exist{where}")


def fill_defaults(config: Any) -> Any:
    """The one step that changes a config after its type checks: the defaults that depend on other
    keys (TrainConfig: the dataset's model, alpha by mix_where), from its `fill_defaults` method.
    The `check` methods that follow only check."""
    fill = getattr(config, "fill_defaults", None)
    if fill is not None:
        fill()
    return config


def validate(config: Any) -> Any:
    """Path, type, range and choice checks for every field, the derived defaults (`fill_defaults`),
    then the config's own cross-field checks."""
    _check_paths(config)
    for f in dataclasses.fields(config):
        value = _coerce(f.name, getattr(config, f.name), field_type(type(config), f.name))
        _check_range(f.name, value, f.metadata)
        setattr(config, f.name, value)
    for f in dataclasses.fields(config):  # after the cheap checks: registry-backed choices import torch
        _check_choice(f.name, getattr(config, f.name), f.metadata)
    fill_defaults(config)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


MAX_YAML_BYTES = 1_000_000  # a config file is a few hundred bytes; a bigger one is a mistake or an attack
MAX_YAML_DEPTH = 32  # nesting of mappings and lists
MAX_YAML_NODES = 100_000  # values after expanding aliases (a "billion laughs" file expands to 10^9)


class _Refused(Exception):
    """A YAML file beyond the bounds, or with a duplicate key: the message, without the file's name."""


def _bounded_loader():
    """A yaml.SafeLoader that refuses deep nesting, alias expansion beyond MAX_YAML_NODES values and
    duplicate keys, while composing: before anything is constructed, let alone printed."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nests deeper than {MAX_YAML_DEPTH} levels (line {mark.line + 1})")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_document(self, node):
            if _expanded_size(node, {})[0] > MAX_YAML_NODES:
                raise _Refused(f"expands to more than {MAX_YAML_NODES:,} values through its aliases (&anchor/*alias)")
            return super().construct_document(node)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_scalar(key_node)
                    if key in seen:
                        raise _Refused(f"has the key '{key}' twice (again at line {key_node.start_mark.line + 1}); "
                                       f"keep one of them")
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return BoundedLoader


def _expanded_size(node, seen: dict, depth: int = 1) -> tuple[int, int]:
    """(how many values, how many levels) `node` stands for once every alias is expanded, shared nodes
    counted each time; refuses nesting beyond MAX_YAML_DEPTH built through aliases (anchors in a chain)."""
    import yaml

    if id(node) in seen:
        if seen[id(node)] is None:
            raise _Refused("holds an alias inside its own anchor (a recursive structure)")
    else:
        seen[id(node)] = None
        children = [] if isinstance(node, yaml.ScalarNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
        total, height = 1, 0
        for child in children:
            size, levels = _expanded_size(child, seen, depth + 1)
            total, height = total + size, max(height, levels)
            if total > MAX_YAML_NODES:
                break
        seen[id(node)] = (total, height + 1)
    if depth - 1 + seen[id(node)][1] > MAX_YAML_DEPTH:
        raise _Refused(f"nests deeper than {MAX_YAML_DEPTH} levels through its aliases")
    return seen[id(node)]


def _read_bounded(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"config file '{path}' is {size:,} bytes, more than a config file needs (the limit is "
                          f"{MAX_YAML_BYTES:,}); pass the YAML file of config keys")
    with open(path, encoding="utf-8") as handle:
        return handle.read(MAX_YAML_BYTES + 1)  # a file that grows meanwhile is still cut


def load_yaml(path: Union[str, Path]) -> dict:
    import yaml  # only paid for when a file is given

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass the path of a YAML file to --config")
    try:
        data = yaml.load(_read_bounded(path), Loader=_bounded_loader())  # noqa: S506 (a SafeLoader)
    except _Refused as exc:
        raise ConfigError(f"config file '{path}' {exc}; fix the file and retry") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}; fix the file and retry") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not a text file; pass a YAML file to --config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys to values, not {type(data).__name__}")
    return data


def check_keys(cls: type, values: dict, source: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    if source == "base":  # a saved config (a run's config.yaml, a checkpoint's): no typo, another writer
        unknown = [str(key) for key in values if key not in names]
        if unknown:
            raise ConfigError(f"the saved config holds keys this command does not know ({', '.join(unknown[:4])}"
                              f"{', ...' if len(unknown) > 4 else ''}): another command (mixup train, fewshot "
                              f"train, gan, corrupt-labels) or a newer version wrote it; continue it with that one")
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown config key '{key}' in {source}{suggest(str(key), names)}; valid keys: {', '.join(names)}"
            )


def _env_layer(cls: type, base: Optional[dict]) -> dict:
    """The values the environment sets (fields with an `env`), for a new config only: a saved one
    (`base`: a resume, a checkpoint's) keeps its own."""
    from ..env import from_env

    if base is not None:
        return {}
    found = {f.name: from_env(f.metadata.get("env")) for f in dataclasses.fields(cls)}
    return {k: v for k, v in found.items() if v is not None}


def resolve_config(cls: type, yaml_path: Union[str, Path, None] = None, overrides: Optional[dict] = None,
                   base: Optional[dict] = None):
    """defaults < base < YAML < environment (fields with an `env`, new configs only) < overrides
    (flags; None means 'not given'), validated."""
    values: dict = {}
    names: dict = {}  # key -> how errors name it: by its flag, its YAML file or its variable
    for source, layer in (("base", base or {}), ("", load_yaml(yaml_path) if yaml_path else {}),
                          ("env", _env_layer(cls, base)), ("flags", overrides or {})):
        layer = {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in layer.items()}
        check_keys(cls, layer, f"config file '{yaml_path}'" if source == "" else source)
        given = {k: v for k, v in layer.items() if not (source == "flags" and v is None)}
        values.update(given)
        for key in given:
            if source == "flags":
                names[key] = "--" + key.replace("_", "-")
            elif source == "":
                names[key] = f"config key '{key}' in {yaml_path}"
            elif source == "env":
                names[key] = f"environment variable {_field_env(cls, key)}"
    config = cls()
    for key, value in values.items():
        setattr(config, key, value)
    try:
        return validate(config)
    except ConfigError as exc:
        exc.args = (_name_sources(str(exc), names),)
        raise


def _field_env(cls: type, name: str) -> str:
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata["env"]


_KEY_IN_MESSAGE = re.compile(r"config key '(\w+)'")


def _name_sources(message: str, names: dict) -> str:
    """Checks everywhere name a value "config key 'x'"; only here is it known whether the user typed
    the flag --x or wrote x in a YAML file, so the message names it the way it was given."""
    return _KEY_IN_MESSAGE.sub(lambda m: names.get(m.group(1), m.group(0)), message)


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict):
    """Rebuild a saved config; keys this version no longer knows are refused, not dropped."""
    return resolve_config(cls, base=values)
