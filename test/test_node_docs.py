"""docs/node.md and config/xd_rcdepth.param.schema.json: generated from the code, current, and true of the YAML.

No ROS needed: the generator (xd_rcdepth_ros.node_docs) imports only params.py (numpy) and topics.py.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xd_rcdepth_ros import node_docs
from xd_rcdepth_ros.params import BY_NAME, PARAMETER_NAMES, PARAMETERS, Param
from xd_rcdepth_ros.topics import TOPICS

ROOT = Path(__file__).resolve().parents[1]
YAML_FILE = ROOT / 'config' / 'xd_rcdepth.param.yaml'
REGENERATE = f'{Path(sys.executable).name} -m xd_rcdepth_ros.node_docs'


# ------------------------------------------------------------------ a validator for the schema subset we emit
KNOWN_KEYWORDS = {'$schema', '$ref', 'title', 'description', 'default', 'type', 'definitions', 'properties',
                  'required', 'additionalProperties', 'enum', 'minimum', 'maximum', 'items', 'minItems',
                  'maxItems'}
TYPES = {
    'object': lambda v: isinstance(v, dict),
    'array': lambda v: isinstance(v, list),
    'string': lambda v: isinstance(v, str),
    'boolean': lambda v: isinstance(v, bool),
    'integer': lambda v: isinstance(v, int) and not isinstance(v, bool),
    'number': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _resolve(ref: str, root: dict) -> dict:
    assert ref.startswith('#/'), f'only local $ref supported, got {ref}'
    node = root
    for part in ref[2:].split('/'):
        node = node[part]
    return node


def _join(path: str, key) -> str:
    return f'{path}.{key}' if path else str(key)


def validate(instance, schema: dict, root: dict | None = None, path: str = '') -> list[str]:
    """Error messages (each naming the key's dotted path) for `instance` against `schema`; [] when valid."""
    root = schema if root is None else root
    if '$ref' in schema:
        schema = _resolve(schema['$ref'], root)
    where = path or '<document>'
    t = schema.get('type')
    if t is not None and not TYPES[t](instance):
        return [f"'{where}': expected {t}, got {type(instance).__name__} {instance!r}"]
    errors = []
    if 'enum' in schema and instance not in schema['enum']:
        errors.append(f"'{where}': {instance!r} is not one of {schema['enum']}")
    if TYPES['number'](instance):
        if 'minimum' in schema and instance < schema['minimum']:
            errors.append(f"'{where}': {instance} is below the minimum {schema['minimum']}")
        if 'maximum' in schema and instance > schema['maximum']:
            errors.append(f"'{where}': {instance} is above the maximum {schema['maximum']}")
    if isinstance(instance, dict):
        props = schema.get('properties', {})
        for key in schema.get('required', []):
            if key not in instance:
                errors.append(f"'{_join(path, key)}': required key missing")
        for key, value in instance.items():
            if key in props:
                errors += validate(value, props[key], root, _join(path, key))
            elif schema.get('additionalProperties') is False:
                errors.append(f"'{_join(path, key)}': unexpected key (not in the schema)")
    if isinstance(instance, list):
        if 'minItems' in schema and len(instance) < schema['minItems']:
            errors.append(f"'{where}': {len(instance)} items, fewer than {schema['minItems']}")
        if 'maxItems' in schema and len(instance) > schema['maxItems']:
            errors.append(f"'{where}': {len(instance)} items, more than {schema['maxItems']}")
        if 'items' in schema:
            for i, item in enumerate(instance):
                errors += validate(item, schema['items'], root, f'{where}[{i}]')
    return errors


def _keywords(schema) -> set:
    """Every keyword used in a schema (property names under `properties`/`definitions` are not keywords)."""
    out = set()
    if isinstance(schema, dict):
        for k, v in schema.items():
            out.add(k)
            if k in ('properties', 'definitions'):
                for sub in v.values():
                    out |= _keywords(sub)
            elif isinstance(v, dict):
                out |= _keywords(v)
    return out


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture(scope='module')
def schema() -> dict:
    return json.loads((ROOT / node_docs.SCHEMA).read_text())


@pytest.fixture()
def params_yaml() -> dict:
    return yaml.safe_load(YAML_FILE.read_text())


def _definition(schema: dict) -> dict:
    return _resolve(schema['properties']['/**']['properties']['ros__parameters']['$ref'], schema)


def _leaves(obj_schema: dict, prefix: str = '') -> dict:
    """Dotted parameter name -> its schema, walking the nested objects of the definition."""
    out = {}
    for key, sub in obj_schema['properties'].items():
        if sub.get('type') == 'object' and 'properties' in sub:
            out.update(_leaves(sub, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = sub
    return out


def _ros(params: dict) -> dict:
    return params['/**']['ros__parameters']


def _errors_for(schema, params, key) -> list[str]:
    errors = validate(params, schema)
    assert len(errors) == 1, errors
    assert f'{key}' in errors[0], errors
    return errors


# ------------------------------------------------------------------ (a) the committed outputs are current
def test_committed_page_and_schema_are_what_the_generator_makes_now():
    for rel, text in node_docs.outputs().items():
        path = ROOT / rel
        assert path.is_file(), f'{rel} is missing: run `{REGENERATE}`'
        assert path.read_text(encoding='utf-8') == text, \
            f'{rel} is stale (params.py or topics.py changed): run `{REGENERATE}`'
    assert node_docs.stale(ROOT) == []


def test_a_parameter_change_without_regenerating_is_caught(monkeypatch):
    extra = Param('probe.extra', 1.5, 'A parameter added to the table but not to the outputs.', range=(0.0, 2.0))
    monkeypatch.setattr(node_docs, 'PARAMETERS', PARAMETERS + (extra,))
    assert set(node_docs.stale(ROOT)) == {node_docs.PAGE, node_docs.SCHEMA}
    assert '`probe.extra`' in node_docs.page()
    assert _leaves(_definition(node_docs.schema()))['probe.extra']['maximum'] == 2.0


def test_check_cli_exits_1_with_one_line_naming_the_stale_file(tmp_path):
    for rel, text in node_docs.outputs().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding='utf-8')
    page = tmp_path / node_docs.PAGE
    page.write_text(page.read_text() + 'hand edit\n', encoding='utf-8')
    cmd = [sys.executable, '-m', 'xd_rcdepth_ros.node_docs', '--check', '--root', str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1 and 'docs/node.md' in lines[0] and 'schema' not in lines[0], lines
    assert 'python -m xd_rcdepth_ros.node_docs' in lines[0]
    # Regenerating fixes it; the repository's own outputs pass --check, and nothing imports rclpy.
    assert subprocess.run(cmd[:3] + ['--root', str(tmp_path)], cwd=ROOT, capture_output=True,
                          timeout=120).returncode == 0
    probe = ('import sys; from xd_rcdepth_ros import node_docs; rc = node_docs.main(["--check"]); '
             'assert "rclpy" not in sys.modules, "node_docs imported rclpy"; sys.exit(rc)')
    for c in (cmd[:3] + ['--root', str(tmp_path)] + ['--check'], [sys.executable, '-c', probe]):
        out = subprocess.run(c, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (c, out.stdout, out.stderr)


# ------------------------------------------------------------------ (b) the YAML validates; bad copies do not
def test_schema_uses_only_what_the_validator_checks(schema):
    assert _keywords(schema) <= KNOWN_KEYWORDS, _keywords(schema) - KNOWN_KEYWORDS
    assert schema['$schema'] == 'http://json-schema.org/draft-07/schema#'
    assert schema['type'] == 'object' and schema['additionalProperties'] is False
    definition = _definition(schema)
    assert definition['type'] == 'object' and definition['additionalProperties'] is False


def test_example_yaml_and_the_defaults_validate(schema, params_yaml):
    assert validate(params_yaml, schema) == []
    nested = {}
    for p in PARAMETERS:
        *groups, leaf = p.name.split('.')
        node = nested
        for g in groups:
            node = node.setdefault(g, {})
        node[leaf] = copy.deepcopy(p.default)
    assert validate({'/**': {'ros__parameters': nested}}, schema) == []
    # Integers for floats (the node coerces them) and rclpy's own keys are accepted.
    ros = _ros(params_yaml)
    ros['max_depth'], ros['T_camera_radar']['translation'] = 80, [0, 0, 0]
    ros['use_sim_time'] = True
    ros['qos_overrides'] = {'/xd_rcdepth/output/depth': {'publisher': {'reliability': 'best_effort', 'depth': 1}}}
    assert validate(params_yaml, schema) == []


@pytest.mark.parametrize('change, key', [
    # wrong types
    (lambda r: r.update(radar_sweeps='many'), 'radar_sweeps'),
    (lambda r: r.update(torch_threads=True), 'torch_threads'),                 # a bool is no integer
    (lambda r: r['points'].update(stride=2.5), 'points.stride'),
    (lambda r: r.update(use_tf='no'), 'use_tf'),
    (lambda r: r['T_camera_radar'].update(rotation=[1.0, 0.0, 'x', 0.0]), 'T_camera_radar.rotation[2]'),
    (lambda r: r.update(radar_fields='rcs'), 'radar_fields'),
    # out of range / not a choice / wrong length
    (lambda r: r.update(max_depth=5000.0), 'max_depth'),
    (lambda r: r['saliency'].update(max_rate=-1), 'saliency.max_rate'),
    (lambda r: r.update(radar_sweeps=0), 'radar_sweeps'),
    (lambda r: r.update(precision='fp64'), 'precision'),
    (lambda r: r['saliency'].update(layer='encoder'), 'saliency.layer'),
    (lambda r: r['T_camera_radar'].update(translation=[0.0, 1.0]), 'T_camera_radar.translation'),
    # extra and missing keys
    (lambda r: r.update(max_detph=80.0), 'max_detph'),
    (lambda r: r['radar_fields'].update(rcss='rcs'), 'radar_fields.rcss'),
    (lambda r: r.pop('checkpoint'), 'checkpoint'),
    (lambda r: r['depth_colored'].pop('max'), 'depth_colored.max'),
], ids=lambda v: v if isinstance(v, str) else 'copy')
def test_a_bad_copy_of_the_yaml_fails_naming_the_key(schema, params_yaml, change, key):
    change(_ros(params_yaml))
    (error,) = _errors_for(schema, params_yaml, f"'/**.ros__parameters.{key}'")
    assert error


def test_a_bad_document_structure_fails(schema, params_yaml):
    assert 'ros__parameters' in validate({'/**': {}}, schema)[0]
    assert 'xd_rcdepth' in validate(dict(params_yaml, xd_rcdepth={}), schema)[0]   # an extra node section


# ------------------------------------------------------------------ (c) every parameter and topic is documented
def _page_rows(page: str) -> dict:
    """Parameter name -> its row's cells (type, default, range, mode, description)."""
    rows = {}
    for line in page.splitlines():
        m = re.match(r'^\| `([^`]+)` \| (.*) \|$', line)
        if m and not m.group(1).startswith(('~', '/')):
            rows[m.group(1)] = [c.strip() for c in re.split(r'(?<!\\)\|', m.group(2))]
    return rows


def test_every_parameter_is_in_the_page_and_the_schema(schema):
    page = (ROOT / node_docs.PAGE).read_text()
    rows = _page_rows(page)
    assert list(rows) == list(PARAMETER_NAMES)
    for name, (ptype, default, limits, mode, desc) in rows.items():
        p = BY_NAME[name]
        assert default == f'`{json.dumps(p.default)}`', name
        assert mode == ('read-only' if p.read_only else 'live' if p.live else 'configure'), name
        assert desc.replace('\\|', '|') == p.description, name
        for c in p.choices or ():
            assert f'`{c}`' in limits, name
        if p.range:
            assert limits == f'[{p.range[0]}, {p.range[1]}]', name
    leaves = _leaves(_definition(schema))
    assert set(leaves) - set(node_docs.ROS_KEYS) == set(PARAMETER_NAMES)
    for name in PARAMETER_NAMES:
        p, s = BY_NAME[name], leaves[name]
        assert s['default'] == p.default and s['description'] == p.description, name
        assert s.get('enum') == (list(p.choices) if p.choices else None), name
        if p.range:
            assert (s['minimum'], s['maximum']) == tuple(p.range), name
    # Every parameter is required, at its nesting level; rclpy's own keys are optional.
    definition = _definition(schema)
    assert set(node_docs.ROS_KEYS).isdisjoint(definition['required'])
    for name in PARAMETER_NAMES:
        *groups, leaf = name.split('.')
        obj = definition
        for g in groups:
            assert g in obj['required'], name
            obj = obj['properties'][g]
        assert leaf in obj['required'], name


def test_every_topic_is_in_the_page_and_matches_the_node():
    page = (ROOT / node_docs.PAGE).read_text()
    for t in TOPICS:
        assert f'| `{t.name}` | `{t.type}` |' in page, t.name
    node_source = (ROOT / 'xd_rcdepth_ros' / 'node.py').read_text()
    quoted = set(re.findall(r"'(~/[A-Za-z0-9_/]+|/[a-z_]+)'", node_source))
    names = {t.name for t in TOPICS}
    assert quoted <= names, f'node.py has topics that topics.TOPICS lacks: {quoted - names}'
    # node.py creates every topic through the table's constants (topics.OUTPUT_DEPTH, ...)
    from xd_rcdepth_ros import topics
    constants = {k for k, v in vars(topics).items() if k.isupper() and isinstance(v, str) and v in names}
    assert {getattr(topics, k) for k in constants} == names
    unused = sorted(k for k in constants if f'topics.{k}' not in node_source)
    assert not unused, f'node.py does not use these topics of topics.py: {unused}'
