#!/usr/bin/env python3
"""Runs c_api_test on tinystories-656k with the golden's first prompt and greedy tokens.
usage: run_c_api_test.py C_API_TEST   (exit 77 = skipped without $TFX_TEST_DATA)"""
import json, os, subprocess, sys

data = os.environ.get('TFX_TEST_DATA', '')
model = os.path.join(data, 'models', 'tinystories-656k')
golden = os.path.join(data, 'golden', 'tinystories-656k.json')
if not data or not os.path.isdir(model) or not os.path.isfile(golden):
    print('skipped: TFX_TEST_DATA does not hold models/tinystories-656k and its golden')
    sys.exit(77)
prompt = json.load(open(golden))['prompts'][0]
ids = lambda xs: ','.join(map(str, xs))
sys.exit(subprocess.run([sys.argv[1], model, ids(prompt['input_ids']), ids(prompt['greedy']['new_tokens'])]).returncode)
