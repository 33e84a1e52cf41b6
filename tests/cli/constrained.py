#!/usr/bin/env python3
"""Constrained decoding through `tfx generate`: over 100 seeds (one run: num_return_sequences
100 draws seeds S..S+99), every output of --json-schema parses as JSON and validates against its
schema, and every output of --regex matches it in full.
The model: TinyStories' shape with the llama2 tokenizer's 32000 tokens (random weights, so the
automaton, not the model, makes the output valid), built with `tfx init-model`.
usage: constrained.py TFX   (exit 77 = skipped without $TFX_TEST_DATA)"""
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

tfx = sys.argv[1]
data = os.environ.get('TFX_TEST_DATA', '')
config_src = os.path.join(data, 'models', 'tinystories-656k', 'config.json')
tokenizer_dir = os.path.join(data, 'tokenizers', 'llama2')
if not data or not os.path.isfile(config_src) or not os.path.isdir(tokenizer_dir):
    print('skipped: TFX_TEST_DATA does not hold models/tinystories-656k and tokenizers/llama2')
    sys.exit(77)

SCHEMAS = {
    'person': {
        'type': 'object',
        'properties': {
            'name': {'type': 'string', 'minLength': 1, 'maxLength': 12},
            'age': {'type': 'integer'},
            'height': {'type': 'number'},
            'pet': {'enum': ['dog', 'cat', None]},
            'happy': {'type': 'boolean'},
            'friends': {'type': 'array', 'items': {'type': 'string', 'maxLength': 8}, 'maxItems': 3},
            'born': {'type': 'string', 'format': 'date'},
            'home': {'$ref': '#/$defs/place'},
        },
        'required': ['name', 'age'],
        '$defs': {'place': {'type': 'object', 'properties': {
            'city': {'type': 'string', 'maxLength': 10},
            'zip': {'anyOf': [{'type': 'integer'}, {'type': 'null'}]}}}},
    },
    'list': {'type': 'array', 'items': {'type': 'object', 'properties': {
        'id': {'type': 'integer'}, 'ok': {'type': 'boolean'}}}, 'minItems': 1, 'maxItems': 4},
}
REGEXES = [r'[0-9]{3}-[a-z]{2,4}', r'(yes|no), because [A-Z][a-z]{1,8}\.']


def validate(value, schema, root, path='#'):
    """The subset of JSON Schema the schemas above use; returns a list of errors."""
    if '$ref' in schema:
        node = root
        for part in schema['$ref'][2:].split('/'):
            node = node[part]
        return validate(value, node, root, path)
    if 'enum' in schema:
        return [] if value in schema['enum'] else [f'{path}: {value!r} not in enum']
    if 'anyOf' in schema:
        return [] if any(not validate(value, s, root, path) for s in schema['anyOf']) else [f'{path}: no anyOf branch']
    kind = schema.get('type')
    checks = {'object': lambda v: isinstance(v, dict), 'array': lambda v: isinstance(v, list),
              'string': lambda v: isinstance(v, str), 'boolean': lambda v: isinstance(v, bool),
              'integer': lambda v: isinstance(v, int) and not isinstance(v, bool),
              'number': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              'null': lambda v: v is None}
    if kind and not checks[kind](value):
        return [f'{path}: {value!r} is not {kind}']
    errors = []
    if kind == 'object':
        for req in schema.get('required', []):
            if req not in value:
                errors.append(f'{path}: missing {req}')
        for name, sub in schema.get('properties', {}).items():
            if name in value:
                errors += validate(value[name], sub, root, f'{path}/{name}')
    if kind == 'array':
        if not schema.get('minItems', 0) <= len(value) <= schema.get('maxItems', 10**9):
            errors.append(f'{path}: {len(value)} items')
        for i, item in enumerate(value):
            errors += validate(item, schema.get('items', {}), root, f'{path}/{i}')
    if kind == 'string':
        if not schema.get('minLength', 0) <= len(value) <= schema.get('maxLength', 10**9):
            errors.append(f'{path}: length {len(value)}')
        if schema.get('format') == 'date':
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                errors.append(f'{path}: {value!r} is not a date')
    return errors


def generate(model, tmp, constraint, seed):
    config = os.path.join(tmp, 'gen.json')
    json.dump({'do_sample': True, 'top_k': 0, 'num_return_sequences': 100, 'max_new_tokens': 400}, open(config, 'w'))
    p = subprocess.run([tfx, 'generate', '--model', model, 'Once upon a time', '--generation-config', config,
                        '--seed', str(seed), '--json', *constraint], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f'exit {p.returncode}: {p.stderr[-400:]}')
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()][:-1]  # the last line: all sequences
    assert len(rows) == 100, f'{len(rows)} rows'
    return rows


failures = []
with tempfile.TemporaryDirectory() as tmp:
    config = json.load(open(config_src))
    config['vocab_size'] = 32000
    json.dump(config, open(os.path.join(tmp, 'config.json'), 'w'))
    model = os.path.join(tmp, 'model')
    subprocess.run([tfx, 'init-model', '--config', os.path.join(tmp, 'config.json'), '--out', model, '--seed', '3'],
                   check=True, capture_output=True)
    for name in ('tokenizer.json', 'tokenizer_config.json'):
        with open(os.path.join(tokenizer_dir, name), 'rb') as src, open(os.path.join(model, name), 'wb') as dst:
            dst.write(src.read())
    for name, schema in SCHEMAS.items():
        path = os.path.join(tmp, name + '.schema.json')
        json.dump(schema, open(path, 'w'))
        bad = []
        for row in generate(model, tmp, ['--json-schema', path], seed=1000):
            try:
                errors = validate(json.loads(row['text']), schema, schema)
            except json.JSONDecodeError as e:
                errors = [f'does not parse: {e}']
            if errors or row['new_tokens'][-1] != 2:
                bad.append(f'{row["text"]!r}: {errors or "no EOS at the end"}')
        print(f"{'ok  ' if not bad else 'FAIL'} schema {name}: {100 - len(bad)}/100 outputs parse and validate")
        failures += [f'schema {name}: {b}' for b in bad[:3]]
    for pattern in REGEXES:
        rows = generate(model, tmp, ['--regex', pattern], seed=2000)
        bad = [row['text'] for row in rows if not re.fullmatch(pattern, row['text'])]
        print(f"{'ok  ' if not bad else 'FAIL'} regex {pattern}: {100 - len(bad)}/100 outputs match")
        failures += [f'regex {pattern}: {b!r}' for b in bad[:3]]
for f in failures:
    print('FAIL', f)
sys.exit(1 if failures else 0)
