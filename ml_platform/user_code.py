"""The code a team brings: an estimator or a feature transform named by import path in pipelines.yaml
(``lightgbm:LGBMClassifier``, ``features:add_ratios``), and what a model built with it needs to load.

Import paths are ``module:attribute``. Modules come from the installed packages or from the folder of
the pipelines file (ml_platform.paths), put on ``sys.path`` before the team's code is imported.
``check_syntax`` is all pipelines.yaml's schema asks of an import path; ``import_object`` imports it
(ml_platform.loading does, once the file is valid).

A model pickles the functions and classes it holds by reference: loading it needs the same modules.
Each model records them (``requirements_of``): for an installed package its distribution and version,
for a module from the project folder its file's sha256. ``check_requirements`` compares the record
with what this process can import before a model is unpickled, so a missing or different module is
one ``ModelDependencyError`` naming it, not a ``ModuleNotFoundError`` from inside unpickling.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
from pathlib import Path
from typing import Any

from ml_platform.errors import ModelDependencyError, UserCodeError
from ml_platform.paths import code_dir, make_importable

_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$")
# Modules of the platform and its own dependencies: their versions are the platform's, not the model's.
_PLATFORM_MODULES = ("ml_platform", "sklearn", "numpy", "pandas", "scipy", "joblib", "builtins")


def is_import_path(text: str) -> bool:
    """``module:attribute`` (``lightgbm:LGBMClassifier``), as opposed to a built-in name."""
    return ":" in text


def check_syntax(path: str) -> str:
    """``path`` if it is written ``module:attribute``; UserCodeError otherwise. Imports nothing."""
    if not _IMPORT_PATH.match(path):
        raise UserCodeError(f"{path!r} is not an import path: write module:attribute, e.g. lightgbm:LGBMClassifier")
    return path


def import_object(path: str) -> Any:
    """The object an import path names; UserCodeError says which part is wrong."""
    check_syntax(path)
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserCodeError(
            f"cannot import module {module_name!r} ({exc}): install its package, or put {module_name}.py"
            " beside pipelines.yaml"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: say how
        raise UserCodeError(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UserCodeError(f"module {module_name!r} has no {attribute!r}") from None
    return found


def _distribution(top_level: str) -> tuple[str, str] | None:
    """(distribution name, version) of the installed package providing a top-level module."""
    names = importlib.metadata.packages_distributions().get(top_level) or []
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _file_digest(module_name: str) -> tuple[str, str] | None:
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin).name, "sha256:" + hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()


def requirements_of(*objects: Any) -> list[dict[str, str]]:
    """What loading a model that holds these objects (estimator, transform) needs: one entry per
    module outside the platform's own dependencies, in first-seen order."""
    seen: dict[str, dict[str, str]] = {}
    for obj in objects:
        if obj is None:
            continue
        target = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__module__") else type(obj)
        module_name = getattr(target, "__module__", None) or type(obj).__module__
        top_level = module_name.split(".")[0]
        if top_level in _PLATFORM_MODULES or module_name in seen:
            continue
        entry = {"module": module_name}
        distribution = _distribution(top_level)
        if distribution is not None:
            entry["distribution"], entry["version"] = distribution
        else:
            found = _file_digest(module_name)
            if found is not None:
                entry["file"], entry["sha256"] = found
        seen[module_name] = entry
    return list(seen.values())


def check_requirements(requirements: list[dict[str, str]] | None, what: str) -> None:
    """Raise ModelDependencyError when a module ``what`` (a model version) needs is missing here, or
    is another version than the one it was trained with."""
    if not requirements:
        return
    make_importable(code_dir())
    for entry in requirements:
        module_name = entry["module"]
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            needs = (
                f"{entry['distribution']}=={entry['version']}"
                if "distribution" in entry
                else f"{entry.get('file', module_name + '.py')} beside pipelines.yaml"
            )
            raise ModelDependencyError(
                f"{what} needs module {module_name!r}, which cannot be imported here: install {needs}"
                " (or add its folder to PYTHONPATH)"
            )
        if "distribution" in entry:
            found = _distribution(module_name.split(".")[0])
            if found is not None and found[1] != entry["version"]:
                raise ModelDependencyError(
                    f"{what} was trained with {entry['distribution']} {entry['version']}, this process has"
                    f" {found[1]}: install {entry['distribution']}=={entry['version']} to load it"
                )
        elif "sha256" in entry:
            found = _file_digest(module_name)
            if found is not None and found[1] != entry["sha256"]:
                raise ModelDependencyError(
                    f"{what} was trained with another {found[0]} (module {module_name!r};"
                    f" sha256 {entry['sha256'][7:19]}…, here {found[1][7:19]}…): its features could differ;"
                    " restore that file, or deploy a model trained with this one"
                )
