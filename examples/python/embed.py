#!/usr/bin/env python3
"""An embedding job with tfx's Python package: texts batched with padding and truncation as a
transformers script would tokenize them, each row's real tokens (attention_mask 1) run through
the encoder, mean-pooled and L2-normalized; then the most similar pair is printed.
usage: PYTHONPATH=build/python python3 examples/python/embed.py MODEL_DIR TEXT TEXT [TEXT...]"""
import sys

import numpy as np

import tfx

model_dir, texts = sys.argv[1], sys.argv[2:]
tokenizer = tfx.AutoTokenizer.from_pretrained(model_dir)
model = tfx.AutoModel.from_pretrained(model_dir)
if tokenizer.pad_token_id is None:
    tokenizer.pad_token_id = 0
batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
vectors = []
for ids, mask in zip(batch.input_ids, batch.attention_mask):
    hidden = next(iter(model(ids[mask == 1]).values()))[0]  # [tokens, hidden]
    pooled = hidden.mean(axis=0)
    vectors.append(pooled / max(np.linalg.norm(pooled), 1e-12))
similarity = np.array(vectors) @ np.array(vectors).T
np.fill_diagonal(similarity, -np.inf)
i, j = np.unravel_index(similarity.argmax(), similarity.shape)
print(f"most similar: {texts[i]!r} and {texts[j]!r} (cosine {similarity[i, j]:.3f})")
