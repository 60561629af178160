"""Generate the node's reference page and its parameters' JSON schema from the tables in the code.

    python -m xd_rcdepth_ros.node_docs            # (re)write docs/node.md and config/xd_rcdepth.param.schema.json
    python -m xd_rcdepth_ros.node_docs --check    # exit 1, naming the stale file, when either differs

Sources: `params.PARAMETERS` (every parameter) and `topics.TOPICS` (every topic). The page follows
image_pipeline's depth_image_proc `doc/components.rst` (node, what it does, topics, parameters,
lifecycle); the schema follows Autoware's `schema/*.schema.json` (draft-07, one definition under
`/**: ros__parameters`). Dotted parameter names are nested objects, as the params YAML writes them
(`radar_fields: {rcs: ...}`). No ROS imports: params.py needs only numpy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .params import PARAMETERS, Param
from .topics import PUBLICATIONS, SUBSCRIPTIONS

ROOT = Path(__file__).resolve().parents[1]
PAGE = Path('docs') / 'node.md'
SCHEMA = Path('config') / 'xd_rcdepth.param.schema.json'
COMMAND = 'python -m xd_rcdepth_ros.node_docs'

NODE_NAME = 'xd_rcdepth'
EXECUTABLE = 'xd_rcdepth_node'
DEFINITION = 'xd_rcdepth'
SUMMARY = (
    'Pairs camera images with radar sweeps by header stamp, projects the radar into the image and runs an\n'
    'xd_rcdepth checkpoint (torch or ONNX Runtime) to publish metric dense depth, pixel-aligned with the image.')
LIFECYCLE = (
    'configure reads and validates every parameter, then creates the pairer, publishers and extrinsics; activate\n'
    'loads the model, subscribes and starts the inference worker; deactivate / cleanup undo them in turn.')
# Keys a params file may hold besides PARAMETERS: rclpy declares them itself. Optional in the schema.
ROS_KEYS = {
    'use_sim_time': {'type': 'boolean', 'default': False,
                     'description': 'Use /clock (rosbag replay with --clock).'},
    'qos_overrides': {'type': 'object',
                      'description': 'QoS overrides (REP-2003), one entity at a time: `qos_overrides.<fully '
                                     'qualified topic>.<publisher|subscription>.<policy>`.'},
}


# ---------------------------------------------------------------------------------------------- helpers
def mode(p: Param) -> str:
    """read-only (fixed for the process), live (applied at once) or configure (read at configure)."""
    return 'read-only' if p.read_only else 'live' if p.live else 'configure'


def ros_type(p: Param) -> str:
    d = p.default
    if isinstance(d, bool):
        return 'bool'
    if isinstance(d, int):
        return 'integer'
    if isinstance(d, float):
        return 'double'
    if isinstance(d, str):
        return 'string'
    if isinstance(d, list) and p.is_float:
        return 'double[]'
    raise TypeError(f'parameter {p.name}: no ROS type for default {d!r}')


def json_type(p: Param) -> dict:
    """The JSON schema type of a parameter, from its default (floats take integers too: number)."""
    t = ros_type(p)
    if t == 'double[]':
        n = len(p.default)
        return {'type': 'array', 'items': {'type': 'number'}, 'minItems': n, 'maxItems': n}
    return {'type': {'bool': 'boolean', 'integer': 'integer', 'double': 'number', 'string': 'string'}[t]}


def param_schema(p: Param) -> dict:
    s = json_type(p)
    s['description'] = p.description
    s['default'] = p.default
    if p.choices:
        s['enum'] = list(p.choices)
    if p.range is not None:
        cast = int if s['type'] == 'integer' else float
        s['minimum'], s['maximum'] = cast(p.range[0]), cast(p.range[1])
    return s


def _object(properties: dict, required: list) -> dict:
    return {'type': 'object', 'properties': properties, 'required': required, 'additionalProperties': False}


# ---------------------------------------------------------------------------------------------- schema
def schema() -> dict:
    """Autoware-style draft-07 schema of config/xd_rcdepth.param.yaml (nested as the YAML writes it)."""
    root = _object({}, [])
    for p in PARAMETERS:
        *groups, leaf = p.name.split('.')
        node = root
        for g in groups:
            if g not in node['properties']:
                node['properties'][g] = _object({}, [])
                node['required'].append(g)
            node = node['properties'][g]
        node['properties'][leaf] = param_schema(p)
        node['required'].append(leaf)
    for key, s in ROS_KEYS.items():          # optional: not in `required`
        root['properties'][key] = dict(s)
    return {
        '$schema': 'http://json-schema.org/draft-07/schema#',
        'title': f'Parameters for the {NODE_NAME} node',
        'type': 'object',
        'definitions': {DEFINITION: root},
        'properties': {
            '/**': {'type': 'object',
                    'properties': {'ros__parameters': {'$ref': f'#/definitions/{DEFINITION}'}},
                    'required': ['ros__parameters'],
                    'additionalProperties': False},
        },
        'required': ['/**'],
        'additionalProperties': False,
    }


def schema_text() -> str:
    return json.dumps(schema(), indent=2) + '\n'


# ---------------------------------------------------------------------------------------------- page
def _cell(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _value(v) -> str:
    return json.dumps(v)


def _limits(p: Param) -> str:
    if p.choices:
        return ', '.join(f'`{c}`' for c in p.choices)
    if p.range is not None:
        return f'[{p.range[0]}, {p.range[1]}]'
    return ''


def _topic_table(topics) -> list[str]:
    rows = ['| topic | type | what |', '|---|---|---|']
    rows += [f'| `{t.name}` | `{t.type}` | {_cell(t.description)} |' for t in topics]
    return rows


def page() -> str:
    lines = [
        f'<!-- Generated by `{COMMAND}` from xd_rcdepth_ros/params.py and xd_rcdepth_ros/topics.py: '
        'edit those, then run it. -->',
        '',
        f'# {NODE_NAME}',
        '',
        f'Lifecycle node `{NODE_NAME}`, executable `{EXECUTABLE}` (package `xd_rcdepth_ros`), launch file '
        '`launch/xd_rcdepth.launch.py`.',
        '',
        SUMMARY,
        '',
        '## Subscribed topics',
        '',
        *_topic_table(SUBSCRIPTIONS),
        '',
        '## Published topics',
        '',
        *_topic_table(PUBLICATIONS),
        '',
        'Private topics (`~/...`) resolve under the node: `/<namespace>/xd_rcdepth/...`; remap them (the launch '
        'file has an argument for each).',
        '',
        '## Parameters',
        '',
        'Mode: *read-only* is fixed for the life of the process; *live* applies at once on `ros2 param set`; '
        '*configure* is read at configure (deactivate, cleanup, set, configure again). Floating-point '
        'parameters accept integers. Example: `config/xd_rcdepth.param.yaml`; schema: '
        f'`{SCHEMA.as_posix()}`.',
        '',
        '| name | type | default | range / choices | mode | description |',
        '|---|---|---|---|---|---|',
    ]
    for p in PARAMETERS:
        lines.append(f'| `{p.name}` | {ros_type(p)} | `{_cell(_value(p.default))}` | {_cell(_limits(p))} | '
                     f'{mode(p)} | {_cell(p.description)} |')
    lines += [
        '',
        'Also accepted (declared by rclpy, optional in the schema):',
        '',
        *(f'- `{k}` ({s["type"]}): {s["description"]}' for k, s in ROS_KEYS.items()),
        '',
        '## Lifecycle',
        '',
        LIFECYCLE,
        '',
        '`autostart` (default true) drives configure + activate at start-up, so no lifecycle manager is needed.',
        '',
    ]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------- main
def outputs() -> dict:
    """Relative path -> the text it should hold."""
    return {PAGE: page(), SCHEMA: schema_text()}


def stale(root: Path = ROOT) -> list[Path]:
    """The outputs under `root` that are missing or differ from what would be generated now."""
    out = []
    for rel, text in outputs().items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding='utf-8') != text:
            out.append(rel)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split('\n\n')[0])
    ap.add_argument('--check', action='store_true',
                    help='write nothing; exit 1 when a committed output differs from what would be generated')
    ap.add_argument('--root', type=Path, default=ROOT, help='repository root (default: %(default)s)')
    args = ap.parse_args(argv)
    if args.check:
        bad = stale(args.root)
        if bad:
            names = ', '.join(p.as_posix() for p in bad)
            print(f'{names} {"is" if len(bad) == 1 else "are"} stale: run `{COMMAND}`', file=sys.stderr)
            return 1
        return 0
    for rel, text in outputs().items():
        path = args.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding='utf-8') != text:
            path.write_text(text, encoding='utf-8')
            print(f'wrote {rel.as_posix()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
