#!/usr/bin/env python3
"""Command-line robustness of `tfx`: wrong input gets an error naming the argument and the
expected form (never silent wrong output), through the real binary.
usage: robustness.py TFX CASE   (ctest runs one CASE per test; exit 77 = skipped)
Models come from $TFX_TEST_DATA (models/tinystories-656k, tiny/bert)."""
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

tfx, case = sys.argv[1], sys.argv[2]
data = os.environ.get('TFX_TEST_DATA', '')
STORIES = os.path.join(data, 'models', 'tinystories-656k')
BERT = os.path.join(data, 'tiny', 'bert')
failures = []


def need(*paths):
    for p in paths:
        if not data or not os.path.isdir(p):
            print(f'skipped: TFX_TEST_DATA does not hold {p}')
            sys.exit(77)


def limit_memory():  # a regression must fail fast, not fill the machine
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def run(*args, stdin=None, timeout=120, limit=False):
    p = subprocess.run([tfx, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=limit_memory if limit else None)
    return p.returncode, p.stdout, p.stderr


def expect(label, result, code, *needles, absent=(), stream='stderr'):
    rc, out, err = result
    text = err if stream == 'stderr' else out
    problems = []
    if rc != code:
        problems.append(f'exit {rc}, want {code}')
    problems += [f'no {n!r}' for n in needles if n not in text]
    problems += [f'unwanted {n!r}' for n in absent if n in text]
    if problems:
        failures.append(f'{label}: ' + '; '.join(problems) + f'\n    stdout: {out[-400:]!r}\n    stderr: {err[-400:]!r}')
    else:
        print(f'ok   {label}')


def generate(*args, **kw):
    return run('generate', '--model', STORIES, *args, **kw)


def case_batch_ids_past_int32(tmp):
    need(STORIES)
    path = os.path.join(tmp, 'b.json')
    for ids in ([1, 2, 4294967297], [1, -1], [1, 2.5]):
        json.dump([ids], open(path, 'w'))
        expect(f'--batch {ids}', generate('--batch', path, '--max-new-tokens', '2'), 1, '--batch', str(ids[-1]),
               '0 to 2147483647')
    expect('--input-ids past int32', generate('--input-ids', '1,4294967297'), 1, '--input-ids', '4294967297',
           'out of range')


def case_prompt_sources(tmp):
    need(STORIES)
    expect('PROMPT + --input-ids', generate('Once', '--input-ids', '1,2'), 1, 'PROMPT and --input-ids',
           'cannot be combined')
    path = os.path.join(tmp, 'p.txt')
    open(path, 'w').write('Once')
    expect('PROMPT + --prompt-file', generate('Once', '--prompt-file', path), 1, 'PROMPT and --prompt-file')
    expect('no prompt', generate(), 1, 'give a PROMPT', '--prompt-file')
    expect('--chat + --input-ids', generate('--chat', '--input-ids', '1,2'), 1, '--chat takes a text prompt',
           '--input-ids')


def case_stop_empty(tmp):
    need(STORIES)
    expect('--stop ""', generate('Once upon', '--stop', '', '--max-new-tokens', '10'), 1, '--stop',
           'non-empty string')


def case_sampling_ranges(tmp):
    need(STORIES)
    for option, value, needle in (('--temperature', '1e-45', '>= 1e-06'), ('--temperature', 'inf', 'got inf'),
                                  ('--temperature', 'nan', 'finite'), ('--top-p', '1.5', '(0, 1]'),
                                  ('--top-p', '0', '(0, 1]'), ('--min-p', '-0.5', '[0, 1]'),
                                  ('--top-k', '-1', '>= 0'), ('--repetition-penalty', 'inf', 'finite'),
                                  ('--repetition-penalty', '0', '> 0')):
        expect(f'{option} {value}', generate('Once', option, value, '--max-new-tokens', '3'), 1, option + ':',
               needle)
    rc, out, err = generate('Once', '--temperature', '1e-6', '--max-new-tokens', '3', '--json')
    expect('--temperature 1e-6 (the floor) runs', (rc, out, err), 0)


def case_fresh_seed(tmp):
    need(STORIES)
    args = ('Once upon a time', '--temperature', '1.5', '--max-new-tokens', '24', '--ignore-eos', '--json')
    runs = [generate(*args) for _ in range(2)]
    seeds = []
    for i, r in enumerate(runs):
        expect(f'run {i} prints its seed', r, 0, 'seed: ')
        m = re.search(r'seed: (\d+)', r[2])
        seeds.append(m.group(1) if m else None)
    if seeds[0] is None or seeds[0] == seeds[1] or runs[0][1] == runs[1][1]:
        failures.append(f'two runs without --seed gave seeds {seeds} and the same text: {runs[0][1]!r}')
    if seeds[0] is not None:
        again = generate(*args, '--seed', seeds[0])
        expect('--seed repeats a run', again, 0, f'seed: {seeds[0]}')
        if again[1] != runs[0][1]:
            failures.append(f'--seed {seeds[0]} gave {again[1]!r}, want {runs[0][1]!r}')
    expect('greedy prints no seed', generate('Once', '--greedy', '--max-new-tokens', '3'), 0, absent=('seed:',))


def case_batch_output_form(tmp):
    need(STORIES)
    path = os.path.join(tmp, 'b.json')
    for rows in ([[1, 2, 3]], [[1, 2, 3], [1, 4]]):
        json.dump(rows, open(path, 'w'))
        rc, out, err = generate('--batch', path, '--max-new-tokens', '3', '--greedy')
        lines = out.strip().splitlines()
        # One line per row; with several, a last line holding them all ("sequences").
        try:
            parsed = [json.loads(line) for line in lines]
            per_row = parsed[:len(rows)]
            summary = parsed[-1]
            good = (rc == 0 and len(parsed) == len(rows) + (len(rows) > 1)
                    and all(len(p['new_tokens']) == 3 for p in per_row)
                    and summary['sequences'] == [p['new_tokens'] for p in per_row])
        except (ValueError, KeyError, TypeError, IndexError):
            good = False
        if good:
            print(f'ok   --batch with {len(rows)} row(s) prints a JSON line per row and the sequences last')
        else:
            failures.append(f'--batch with {len(rows)} row(s): exit {rc}, stdout {out!r}, want one JSON line per row '
                            'and, with several, a last line {"sequences": [...]}')


def case_interrupt(tmp):
    need(STORIES)
    # A model with a long context (random weights, no tokenizer: ids stream), so that the
    # generation is still running when Ctrl-C comes.
    config = json.load(open(os.path.join(STORIES, 'config.json')))
    config['max_position_embeddings'] = 65536
    cfg = os.path.join(tmp, 'long.json')
    json.dump(config, open(cfg, 'w'))
    model = os.path.join(tmp, 'long')
    rc, _, err = run('init-model', '--config', cfg, '--out', model)
    if rc != 0:
        failures.append(f'init-model for the interrupt test failed: {err}')
        return
    p = subprocess.Popen([tfx, 'generate', '--model', model, '--input-ids', '1,2,3', '--max-new-tokens', '60000',
                          '--ignore-eos', '--threads', '1'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = os.read(p.stdout.fileno(), 1)  # generation has begun
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    out = first + out
    expect('Ctrl-C during generate', (p.returncode, out.decode(), err.decode()), 130, 'interrupted')
    if not re.fullmatch(rb'(\d+ )+\n', out):
        failures.append(f'Ctrl-C: stdout {out[-200:]!r}, want the ids printed so far and a newline')


def case_number_ranges(tmp):
    need(STORIES, BERT)
    for args in (('bench', '--model', STORIES, '-p', '0'), ('bench', '--model', STORIES, '-r', '0'),
                 ('bench', '--model', STORIES, '-n', '-1'), ('fill-mask', '--model', BERT, 'a [MASK]', '--top-k',
                                                             '0')):
        rc, out, err = run(*args)
        label = ' '.join(args[3:]) if args[0] == 'bench' else '--top-k 0'
        expect(f'{args[0]} {label}', (rc, out, err), 105, 'expected a', absent=('000000',))
    expect('bench -t abc', run('bench', '--model', STORIES, '-t', 'abc'), 1, '-t:', 'thread counts',
           absent=('token ids',))
    expect('bench -t 0', run('bench', '--model', STORIES, '-t', '0'), 1, '-t:', 'positive')
    expect('bench on BERT', run('bench', '--model', BERT, '-p', '4', '-n', '2', '-r', '1', '-t', '1'), 1,
           'bench needs a causal LM', 'BertModel', absent=('512 elements',))


def case_subcommands(tmp):
    expect('tfx generat', run('generat'), 109, "unknown command 'generat'", "did you mean 'generate'")
    expect('tfx --version', run('--version'), 0, 'tfx 0.', stream='stdout')
    expect('global option after the subcommand', run('generate', '--plugin-path', '/tmp', '--model', 'x'), 109,
           '--plugin-path is a global option', 'before the subcommand')


def case_device_choice(tmp):
    need(STORIES)
    expect('tfx env lists each backend with its score', run('env'), 0, 'Backends: cpu (score 100)', stream='stdout')
    bad = dict(os.environ, TFX_DEVICE='nosuchdevice')
    p = subprocess.run([tfx, 'generate', '--model', STORIES, 'hi', '--max-new-tokens', '1'], capture_output=True,
                       text=True, timeout=60, env=bad)
    expect('TFX_DEVICE names the device', (p.returncode, p.stdout, p.stderr), 1,
           "no usable backend plugin for device 'nosuchdevice'")
    gen = ('generate', '--model', STORIES, 'hi', '--max-new-tokens', '1')
    expect('a device index that is not a number', run(*gen, '--device', 'cuda:x'), 1,
           "device 'cuda:x': expected NAME or NAME:INDEX")
    expect('auto takes no index', run(*gen, '--device', 'auto:1'), 1, "auto picks the backend and takes no index")
    expect('a cpu device past the only one', run(*gen, '--device', 'cpu:1'), 1,
           'device cpu:1 does not exist (the cpu backend has one device, cpu:0)')
    expect('cpu:0 is the cpu backend', run(*gen, '--device', 'cpu:0', '--greedy'), 0)
    env = run('env')
    if 'cuda (' in env[1] and 'cuda (score' not in env[1]:
        # Built with the CUDA Toolkit, on a machine without a driver or device: it says which.
        expect('tfx env says why cuda cannot run', env, 0, 'cuda (unavailable here: no CUDA', stream='stdout')


def case_local_folder(tmp):
    for path in ('./modles/x', 'modles/x/y', os.path.join(tmp, 'nope', 'model')):
        expect(f'--model {path}', run('generate', '--model', path, 'hi', timeout=60), 1, 'no such local folder',
               absent=('network', 'Hub repo id'))


def case_batch_json_position(tmp):
    need(STORIES)
    path = os.path.join(tmp, 'bad.json')
    open(path, 'w').write('[[1,2,3],\n [4,5')
    expect('malformed --batch', generate('--batch', path), 1, '--batch', 'line 2, column', 'byte')


def case_init_model_size(tmp):
    need(STORIES)
    base = json.load(open(os.path.join(STORIES, 'config.json')))
    for key, value, needles in (('num_hidden_layers', 100000, ('73.3 GiB', '--max-size')),
                                ('vocab_size', 10**12, ('TiB', 'model.embed_tokens.weight', '--max-size'))):
        config = dict(base, **{key: value})
        cfg = os.path.join(tmp, f'{key}.json')
        json.dump(config, open(cfg, 'w'))
        out = os.path.join(tmp, f'out-{key}')
        start = time.time()
        try:
            result = run('init-model', '--config', cfg, '--out', out, timeout=60, limit=True)
        except subprocess.TimeoutExpired:
            result = (-1, '', 'timed out')
        expect(f'init-model {key}={value}', result, 1, *needles, absent=('bad_alloc',))
        if os.path.exists(os.path.join(out, 'model.safetensors')):
            failures.append(f'init-model {key}={value} wrote {out} anyway')
        if time.time() - start > 30:
            failures.append(f'init-model {key}={value} took {time.time() - start:.0f}s before refusing')
    cfg = os.path.join(STORIES, 'config.json')
    expect('init-model --max-size 1M', run('init-model', '--config', cfg, '--out', os.path.join(tmp, 'small'),
                                           '--max-size', '1M'), 1, '2.5 MiB', '--max-size')
    expect('init-model --max-size 3x', run('init-model', '--config', cfg, '--out', os.path.join(tmp, 'small'),
                                           '--max-size', '3x'), 1, '--max-size: expected a size')


def case_init_model_dtypes(tmp):
    need(STORIES)
    cfg = os.path.join(STORIES, 'config.json')
    sizes = {}
    for dtype, stored, torch_dtype in (('f32', 'F32', 'float32'), ('bf16', 'BF16', 'bfloat16'),
                                       ('f16', 'F16', 'float16')):
        out = os.path.join(tmp, dtype)
        expect(f'init-model --dtype {dtype}', run('init-model', '--config', cfg, '--out', out, '--dtype', dtype), 0,
               f'{dtype}, seed', stream='stdout')
        path = os.path.join(out, 'model.safetensors')
        if not os.path.exists(path):
            continue
        with open(path, 'rb') as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), 'little')))
        kinds = {v['dtype'] for k, v in header.items() if k != '__metadata__'}
        if kinds != {stored}:
            failures.append(f'init-model --dtype {dtype} stored {sorted(kinds)}, want {stored}')
        if json.load(open(os.path.join(out, 'config.json'))).get('torch_dtype') != torch_dtype:
            failures.append(f'init-model --dtype {dtype}: config.json torch_dtype is not {torch_dtype}')
        sizes[dtype] = os.path.getsize(path)
        expect(f'generate on an init-model {dtype} model',
               run('generate', '--model', out, '--input-ids', '1,2,3', '--max-new-tokens', '4', '--greedy', '--json'),
               0, '"new_tokens"', stream='stdout')
    if len(sizes) == 3 and not (abs(sizes['bf16'] - sizes['f16']) < 4096 and sizes['f16'] < 0.6 * sizes['f32']):
        failures.append(f'init-model sizes: {sizes} (half-precision files should be about half of f32)')
    expect('init-model --dtype f8', run('init-model', '--config', cfg, '--out', os.path.join(tmp, 'f8'),
                                        '--dtype', 'f8'), 1, '--dtype', 'f32, bf16 or f16', "'f8'")


def case_prompt_file(tmp):
    need(STORIES)
    common = ('--max-new-tokens', '12', '--greedy')
    want = generate('Once upon a time', *common)
    path = os.path.join(tmp, 'prompt.txt')
    open(path, 'w').write('Once upon a time\n')
    expect('--prompt-file FILE', generate('--prompt-file', path, *common), 0)
    expect('--prompt-file -', generate('--prompt-file', '-', *common, stdin='Once upon a time\n'), 0)
    for label, got in (('FILE', generate('--prompt-file', path, *common)),
                       ('-', generate('--prompt-file', '-', *common, stdin='Once upon a time\n'))):
        if want[0] != 0 or got[1] != want[1]:
            failures.append(f'--prompt-file {label}: {got[1]!r}, want the PROMPT output {want[1]!r}')
    # Over 128 KB (more than one command-line argument may hold): read whole, then refused for
    # its length by the model, not by the shell.
    big = os.path.join(tmp, 'big.txt')
    open(big, 'w').write('Once upon a time ' * 10000)
    expect('--prompt-file over 128 KB', generate('--prompt-file', big, *common), 1, 'max_position_embeddings')
    expect('--prompt-file missing', generate('--prompt-file', os.path.join(tmp, 'none.txt')), 1,
           '--prompt-file: cannot open')


cases = {name[5:]: fn for name, fn in globals().items() if name.startswith('case_')}
if case not in cases:
    sys.exit(f'unknown case {case!r}; cases: {", ".join(cases)}')
with tempfile.TemporaryDirectory() as tmp:
    cases[case](tmp)
for f in failures:
    print('FAIL ' + f)
sys.exit(1 if failures else 0)
