"""dvc.yaml declares what each stage really uses: every repository module its command imports (statically,
including imports inside functions) is covered by a dep, and the params.yaml section it reads is a param.

So a stage re-runs whenever code or a parameter it depends on changes, and the graph cannot drift again.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterable, List, Set

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("formats", "synthetic", "pipelines", "model", "evaluation", "stages")


def _module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> Set[str]:
    """Repository modules imported anywhere in ``path`` (top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: Set[str] = set()
    for node in ast.walk(tree):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES and _module_file(name) is not None:
                found.add(name)
    return found


def transitive_files(module: str) -> Set[Path]:
    """Files of every repository module reachable from ``module`` through imports (package __init__s too)."""
    seen: Set[Path] = set()
    stack = [module]
    while stack:
        name = stack.pop()
        path = _module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        parts = name.split(".")
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages' __init__
        stack.extend(_imported_modules(path))
    return {p for p in seen if p.stat().st_size > 0 or p.name != "__init__.py"}


def _stages() -> Dict[str, dict]:
    document = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    stages = {}
    for name, stage in document["stages"].items():
        if "foreach" in stage:
            items = stage["foreach"]
            for key, item in items.items() if isinstance(items, dict) else ((item, item) for item in items):
                text = yaml.safe_dump(stage["do"]).replace("${key}", str(key))
                if isinstance(item, dict):
                    for field, value in item.items():
                        text = text.replace("${item.%s}" % field, str(value))
                text = text.replace("${item}", str(item))
                stages[f"{name}@{key}"] = yaml.safe_load(text)
        else:
            stages[name] = stage
    return stages


def _covered(path: Path, deps: Iterable[str]) -> bool:
    relative = path.relative_to(REPO_ROOT).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


def _sections_read(files: Iterable[Path]) -> Set[str]:
    pattern = re.compile(r"""(?:parse_stage_args|load_params)\(\s*["']([a-z_0-9]+)["']""")
    return {match for path in files for match in pattern.findall(path.read_text())}


STAGES = _stages()


def stage_modules(stage: dict) -> List[str]:
    """The ``stages`` modules a stage's command runs (``cmd`` is one command or, as DVC allows, a list)."""
    commands = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
    return [module for command in commands for module in re.findall(r"python -m (stages\.[a-z_0-9]+)", command)]


def test_stage_modules_reads_one_command_and_a_list():
    assert stage_modules({"cmd": "python -m stages.train --data_dir d"}) == ["stages.train"]
    assert stage_modules({"cmd": ["python -m stages.train", "python -m stages.eval_depth --x=1"]}) == [
        "stages.train",
        "stages.eval_depth",
    ]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_imported_module(name):
    stage = STAGES[name]
    modules = stage_modules(stage)
    assert modules, f"{name}: command does not run a stages module: {stage['cmd']}"
    deps = [str(dep) for dep in stage.get("deps", [])]
    files = set().union(*(transitive_files(module) for module in modules))
    missing = sorted(path.relative_to(REPO_ROOT).as_posix() for path in files if not _covered(path, deps))
    assert not missing, f"dvc.yaml stage {name!r} imports these files without depending on them: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_cover_the_sections_it_reads(name):
    stage = STAGES[name]
    files = set().union(*(transitive_files(module) for module in stage_modules(stage)))
    declared = {str(p).split(".")[0] if "." not in str(p) else None for p in stage.get("params", [])} - {None}
    partial = {str(p).split(".")[0] for p in stage.get("params", []) if "." in str(p)}
    for section in _sections_read(files):
        assert section in declared, (
            f"dvc.yaml stage {name!r} reads params.yaml section {section!r} but declares "
            f"{'only some of its keys' if section in partial else 'none of it'}: list the whole section"
        )


def test_the_import_scan_sees_function_level_imports():
    files = {p.relative_to(REPO_ROOT).as_posix() for p in transitive_files("stages.train")}
    assert "model/trainer.py" in files  # imported inside main()
    assert "stages/common.py" in files


def test_python_bytecode_is_not_part_of_any_dependency_hash():
    """Python writes __pycache__/*.pyc beside the sources on some machines and not on others, and each stage that
    imports a dependency folder adds files to it: hashed, every stage looked changed after a run."""
    dvc_repo = pytest.importorskip("dvc.repo")
    repo = dvc_repo.Repo(str(REPO_ROOT))
    try:
        ignore = repo.dvcignore
        for package in PACKAGES:
            folder = REPO_ROOT / package / "__pycache__"
            assert ignore.is_ignored_dir(str(folder)), f"{folder} would be hashed as a dependency"
            assert ignore.is_ignored_file(str(folder / "camera.cpython-311.pyc"))
            assert ignore.is_ignored_file(str(REPO_ROOT / package / "stray.pyc"))
        assert not ignore.is_ignored_file(str(REPO_ROOT / "formats" / "camera.py"))
    finally:
        repo.close()


def test_frozen_stages_declare_only_committed_outputs():
    """A frozen stage is never run by `dvc repro`, only verified: a cached output of it would be missing from a
    fresh clone and fail the whole `dvc repro`. So its outputs are git-tracked (cache: false) and committed."""
    frozen = {name: stage for name, stage in STAGES.items() if stage.get("frozen")}
    assert "learned_intrinsics" in frozen
    for name, stage in frozen.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                assert (options or {}).get("cache", True) is False, f"{name}: {path} is cached"
                assert (REPO_ROOT / path).exists(), f"{name}: {path} is not committed"
