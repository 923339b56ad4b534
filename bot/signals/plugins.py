"""Find strategy plugins, build them from config, and scaffold new ones.

Three sources, so that a plugin works whether it is installed, dropped into strategies/, or kept
elsewhere: (a) the "soxbot.strategies" entry-point group, (b) every module of the `strategies`
package (found at call time, so a freshly scaffolded file needs no reinstall), (c) .py files in
`extra_paths`. One broken plugin file must not take the bot down, so import errors become warnings.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import keyword
import pkgutil
import sys
import warnings
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

import strategies as _strategies_pkg
from bot.signals.strategy import Strategy, StrategyParams

ENTRY_POINT_GROUP = "soxbot.strategies"
# __path__ rather than __file__: an editable install made before strategies/__init__.py existed
# imports the package as a namespace package, which has no __file__.
TEMPLATE_PATH = Path(next(iter(_strategies_pkg.__path__))).resolve() / "_template.py"
_TEMPLATE_CLASS, _TEMPLATE_NAME = "MyStrategy", "my_strategy"


class PluginError(Exception):
    """A strategy that cannot be found or built, worded for the person editing the config.

    `problems` holds (key, message) pairs; key is a parameter name (or "" for the whole strategy),
    so the config loader can report `strategies[i].params.<key>`.
    """

    def __init__(self, strategy: str, problems: list[tuple[str, str]]) -> None:
        self.strategy = strategy
        self.problems = problems
        lines = [f"strategy {strategy!r}: " + (f"params.{k}: {m}" if k else m) for k, m in problems]
        super().__init__("\n".join(lines))

    @property
    def key(self) -> str:
        """The first bad parameter ("" when the strategy itself is the problem)."""
        return self.problems[0][0] if self.problems else ""


class PluginWarning(UserWarning):
    """A plugin that was skipped (import error, not a Strategy) or shadowed by another of its name."""


def _strategy_classes(module: ModuleType) -> list[type[Strategy]]:
    """Strategy subclasses defined in `module` itself (not imported into it) that have a name."""
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Strategy)
        and obj is not Strategy
        and obj.__module__ == module.__name__
        and obj.name
    ]


def _load_file(path: Path) -> ModuleType:
    # A unique module name per file, registered in sys.modules so pydantic can resolve annotations.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    mod_name = f"soxbot_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def _py_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.glob("*.py") if not f.name.startswith("_"))
        elif p.suffix == ".py" and p.is_file():
            out.append(p)
        else:
            warnings.warn(
                f"strategy path {p} is neither a .py file nor a directory; skipped",
                PluginWarning,
                stacklevel=3,
            )
    return out


def available(extra_paths: Iterable[Path] = ()) -> dict[str, type[Strategy]]:
    """Every strategy plugin by name. Entry points win over same-named modules (with a warning)."""
    found: dict[str, type[Strategy]] = {}
    origin: dict[str, str] = {}

    def add(cls: type[Strategy], where: str) -> None:
        prev = found.get(cls.name)
        if prev is None:
            found[cls.name], origin[cls.name] = cls, where
        elif prev is not cls:
            warnings.warn(
                f"two strategies are named {cls.name!r}: using {origin[cls.name]}, ignoring {where}",
                PluginWarning,
                stacklevel=3,
            )

    def skip(where: str, exc: BaseException) -> None:
        warnings.warn(
            f"skipping strategy plugin {where}: {type(exc).__name__}: {exc}", PluginWarning, stacklevel=3
        )

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value}"
        try:
            cls = ep.load()
        except Exception as exc:
            skip(where, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Strategy) and cls.name):
            skip(where, TypeError("not a named Strategy subclass"))
            continue
        add(cls, where)

    for info in pkgutil.iter_modules(_strategies_pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod_name = f"{_strategies_pkg.__name__}.{info.name}"
        try:
            module = importlib.import_module(mod_name)
        except Exception as exc:
            skip(f"module {mod_name}", exc)
            continue
        for cls in _strategy_classes(module):
            add(cls, f"module {mod_name}")

    for path in _py_files(extra_paths):
        try:
            module = _load_file(path)
        except Exception as exc:
            skip(f"file {path}", exc)
            continue
        for cls in _strategy_classes(module):
            add(cls, f"file {path}")
    return dict(sorted(found.items()))


def _problem(err: Mapping[str, Any], params_model: type[BaseModel]) -> tuple[str, str]:
    key = ".".join(str(p) for p in err["loc"])
    known = ", ".join(params_model.model_fields) or "(none)"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]), list(params_model.model_fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return key, f"unknown parameter.{hint} Known parameters: {known}."
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = "" if isinstance(err.get("input"), dict) else f" (got {err.get('input')!r})"
    field = params_model.model_fields.get(str(err["loc"][0])) if err["loc"] else None
    desc = (field.description or "").rstrip(".") if field is not None else ""
    what = f" {key}: {desc}." if desc else ""
    return key, f"{msg.rstrip('.')}{got}.{what} Known parameters: {known}."


def create(name: str, params: Mapping[str, Any] | None = None, extra_paths: Iterable[Path] = ()) -> Strategy:
    """Build the strategy `name` with `params`; PluginError names the bad key and the valid choices."""
    plugins = available(extra_paths)
    cls = plugins.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(plugins), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(plugins)
        elsewhere = "A plugin file kept elsewhere: add its directory to [plugins] paths or pass --path DIR."
        raise PluginError(name, [("", f"unknown strategy.{hint} Known strategies: {known}. {elsewhere}")])
    try:
        return cls(dict(params or {}))
    except ValidationError as exc:
        raise PluginError(name, [_problem(e, cls.Params) for e in exc.errors()]) from exc


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe_params(cls: type[Strategy]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, description) per parameter, in declaration order, for `soxbot strategies`."""
    model: type[StrategyParams] = cls.Params
    out = []
    for fname, field in model.model_fields.items():
        default = None if field.default is PydanticUndefined else field.default
        out.append((fname, _type_name(field.annotation), default, field.description or ""))
    return out


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Strategy"


def scaffold(name: str, dest_dir: Path) -> Path:
    """Write `dest_dir/<name>.py` from the template, class renamed to CamelCase and `name = "<name>"`."""
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise PluginError(
            name, [("", "the name must be a Python identifier not starting with '_' (e.g. 'my_breakout')")]
        )
    dest = Path(dest_dir) / f"{name}.py"
    if dest.exists():
        raise PluginError(name, [("", f"{dest} already exists; not overwriting it")])
    if name in available():
        raise PluginError(name, [("", "a strategy of this name already exists; pick another name")])
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    # Swap the template's module docstring (about copying it) for one about the new plugin.
    body = text.split('"""', 2)[2]
    text = f'"""Strategy plugin {name!r}, scaffolded from the soxbot template: edit the rule below."""' + body
    text = text.replace(f'name = "{_TEMPLATE_NAME}"', f'name = "{name}"')
    text = text.replace(_TEMPLATE_CLASS, _class_name(name))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest
