"""The shape of the code: no import cycles among the project's modules, the core never imports the
ROS layer, project modules are imported at the top of a file (a header says what a module depends
on) unless they bring torch with them into a torch-free serving path, and the linter passes.

The import graph is read from the source (ast), every import counted, also those inside functions:
a cycle that only works because one side imports late is still a cycle.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('xd_rcdepth_core', 'xd_rcdepth_ros')


def _modules() -> dict:
    """{dotted module name: (path, is_package)} of both packages."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob('*.py'):
            parts = list(path.relative_to(ROOT).with_suffix('').parts)
            is_pkg = parts[-1] == '__init__'
            out['.'.join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool, modules: dict):
    """(target module, line, inside a function) of every import of a project module in one file."""
    here = name.split('.') if is_pkg else name.split('.')[:-1]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ''
                if child.level:
                    up = here[:len(here) - (child.level - 1)]
                    base = '.'.join(up + ([child.module] if child.module else []))
                # `from pkg import sub` imports the submodule; `from pkg import name` the package
                targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base for a in child.names]
            for target in targets:
                if target in modules:
                    yield target, child.lineno, in_function
            yield from visit(child, nested)
    yield from visit(ast.parse(path.read_text()), False)


def _absolute_imports(node) -> list:
    """The absolute module names an ast node imports (none for relative imports or other nodes)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and not node.level:
        return [node.module or '']
    return []


@pytest.fixture(scope='module')
def graph():
    modules = _modules()
    return modules, {name: list(_imports(name, *modules[name], modules)) for name in modules}


def _cycles(edges: dict) -> list:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycle_among_the_projects_modules(graph):
    modules, imports = graph
    edges = {name: sorted({target for target, _, _ in found if target != name}) for name, found in imports.items()}
    cycles = _cycles(edges)
    assert not cycles, 'import cycles (each a set of modules importing one another): ' + '; '.join(
        ' <-> '.join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({'a': ['b'], 'b': ['c'], 'c': ['a'], 'd': ['a']}) == [['a', 'b', 'c']]
    assert _cycles({'a': ['b'], 'b': []}) == []


def test_core_never_imports_the_ros_layer(graph):
    _, imports = graph
    bad = [f'{name}:{line} imports {target}' for name, found in imports.items() if name.startswith('xd_rcdepth_core')
           for target, line, _ in found if target.startswith('xd_rcdepth_ros')]
    assert not bad, 'the core must not depend on the ROS layer: ' + '; '.join(bad)
    # nor on ROS itself, at any depth (also inside functions)
    for name, (path, _) in _modules().items():
        if not name.startswith('xd_rcdepth_core'):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            for r in _absolute_imports(node):
                top = r.split('.')[0]
                assert top != 'rclpy' and not top.endswith('_msgs') and top != 'rosbags', f'{path}: imports {r}'


@pytest.fixture(scope='module')
def torch_loading(graph):
    """Project modules whose import loads torch: `import torch` at module level, or a module-level import
    of a project module that does."""
    modules, imports = graph
    heavy = {name for name, (path, _) in modules.items() for node in ast.parse(path.read_text()).body
             if any(r.split('.')[0] in ('torch', 'torchvision') for r in _absolute_imports(node))}
    grew = True
    while grew:
        grew = False
        for name, found in imports.items():
            if name not in heavy and any(t in heavy for t, _, late in found if not late):
                heavy.add(name)
                grew = True
    return heavy


def test_project_modules_are_imported_at_the_top_of_a_file(graph, torch_loading):
    """In-function imports are kept for optional or heavy third-party packages (onnxruntime, rclpy, the
    devkit, ...) and for project modules that load torch: the node serves ONNX on a CPU without torch
    (500 MB resident) until saliency is asked for. Everything else is in a module's header."""
    _, imports = graph
    late = [f'{name}:{line} imports {target}' for name, found in imports.items()
            for target, line, in_function in found if in_function and target not in torch_loading]
    assert not late, 'import these at the top of the file: ' + '; '.join(late)


def test_the_torch_free_serving_path_stays_torch_free(torch_loading):
    """The modules the CPU node serves with import no torch when loaded (the check above lets torch-heavy
    modules be imported late; this one keeps the light side light)."""
    serving = ['xd_rcdepth_core.serving', 'xd_rcdepth_core.onnx_estimator', 'xd_rcdepth_core.inputs',
               'xd_rcdepth_core.devices', 'xd_rcdepth_core.backends', 'xd_rcdepth_core.backends.auto',
               'xd_rcdepth_core.backends.ort_backend', 'xd_rcdepth_core.backends.settings', 'xd_rcdepth_ros.node']
    loading = [m for m in serving if m in torch_loading]
    assert not loading, 'these load torch on import: ' + ', '.join(loading)


def test_linter_passes():
    ruff = Path(sys.executable).parent / 'ruff'
    ruff = ruff if ruff.exists() else shutil.which('ruff')
    if ruff is None:
        pytest.fail('ruff is missing: it is a test requirement (requirements.txt); run make test once')
    out = subprocess.run([str(ruff), 'check', '--no-cache', '.'], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, 'ruff check (config in ruff.toml) found:\n' + out.stdout[-6000:] + out.stderr[-2000:]
