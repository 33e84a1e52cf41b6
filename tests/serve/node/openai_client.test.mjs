// `tfx serve` driven by the official OpenAI Node.js client (the npm package `openai`, pinned in
// package-lock.json): the binary is started on an ephemeral loopback port and every answer is
// checked against `tfx generate` run alone on the same prompt.
//
// usage: node openai_client.test.mjs TFX      (ctest runs it; exit 77 = skipped)
// Needs $TFX_TEST_DATA (models/tinystories-656k, chat_templates/qwen2_5, tiny/bert and its
// golden) and
// `npm ci` in this folder (scripts/install-deps.sh runs it).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

const skip = (why) => {
    console.log(`skipped: ${why}`);
    process.exit(77);
};

const tfx = process.argv[2];
const data = process.env.TFX_TEST_DATA ?? '';
if (!tfx) throw new Error('usage: node openai_client.test.mjs TFX');
const tinystories = path.join(data, 'models/tinystories-656k');
const qwenTemplate = path.join(data, 'chat_templates/qwen2_5/tokenizer_config.json');
const tinyBert = path.join(data, 'tiny/bert');
const llama2Tokenizer = path.join(data, 'tokenizers/llama2');
const bertGolden = path.join(data, 'golden/tiny/bert.json');
for (const p of [tinystories, qwenTemplate, tinyBert, bertGolden, llama2Tokenizer]) {
    if (!data || !fs.existsSync(p)) skip(`TFX_TEST_DATA does not hold ${p}`);
}
let OpenAI;
try {
    ({ default: OpenAI } = await import('openai'));
} catch {
    skip(`the npm package 'openai' is not installed: run 'npm ci' in ${path.dirname(process.argv[1])}`);
}

const apiKey = 'tfx-test-key';

// tinystories-656k saved with Qwen2.5's chat template (its byte-fallback vocabulary spells the markers).
function modelWithChatTemplate() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfx-openai-client-'));
    for (const f of fs.readdirSync(tinystories)) fs.copyFileSync(path.join(tinystories, f), path.join(dir, f));
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    config.chat_template = JSON.parse(fs.readFileSync(qwenTemplate, 'utf8')).chat_template;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return dir;
}

// tiny/bert with a WordLevel tokenizer for its 384-token vocabulary ("w0" .. "w383": "w1 w17" is [1, 17]).
function bertWithTokenizer() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfx-openai-bert-'));
    for (const f of fs.readdirSync(tinyBert)) fs.copyFileSync(path.join(tinyBert, f), path.join(dir, f));
    const vocab = Object.fromEntries(Array.from({ length: 384 }, (_, i) => [`w${i}`, i]));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
        version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Whitespace' },
        post_processor: null, decoder: null, model: { type: 'WordLevel', vocab, unk_token: 'w0' },
    }));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast' }));
    return dir;
}

// Starts `tfx serve ARGS --port 0` and resolves with the process and its base URL once it listens.
function startServer(args) {
    const server = spawn(tfx, ['serve', ...args, '--host', '127.0.0.1', '--port', '0'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
    });
    const log = [];
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`tfx serve did not start:\n${log.join('\n')}`)), 60000);
        server.on('exit', (code) => reject(new Error(`tfx serve exited (${code}):\n${log.join('\n')}`)));
        readline.createInterface({ input: server.stderr }).on('line', (line) => {
            log.push(line);
            const listening = line.match(/listening on (http:\/\/[^\s]+)/);
            if (listening) {
                clearTimeout(timer);
                resolve({ server, url: listening[1], log });
            }
        });
    });
}

// Stops a server with SIGTERM (it drains, then exits) and resolves with its exit code.
function stopServer(server) {
    return new Promise((resolve) => {
        if (server.exitCode !== null) return resolve(server.exitCode);
        server.removeAllListeners('exit');
        server.on('exit', (code) => resolve(code));
        server.kill('SIGTERM');
    });
}

// `tfx generate --greedy --json` alone on one prompt: {new_tokens, text}.
function generateAlone(model, prompt, maxTokens, extra = []) {
    const r = spawnSync(
        tfx,
        ['generate', '--model', model, '--greedy', '--json', '--max-new-tokens', String(maxTokens), ...extra, prompt],
        { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
}

const finishReason = (expected, maxTokens) => (expected.new_tokens.length < maxTokens ? 'stop' : 'length');

async function metrics(url) {
    return (await fetch(`${url}/metrics`)).text();
}

describe('tfx serve with the openai client', () => {
    let model, running, client;
    before(async () => {
        model = modelWithChatTemplate();
        running = await startServer(['--model', model, '--served-model-name', 'tiny', '--api-key', apiKey]);
        client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey, maxRetries: 0, timeout: 60000 });
    });
    after(async () => {
        if (running) assert.equal(await stopServer(running.server), 0, running.log.join('\n'));
        fs.rmSync(model, { recursive: true, force: true });
    });

    test('models.list names the served model', async () => {
        const ids = [];
        for await (const m of client.models.list()) ids.push(m.id);
        assert.deepEqual(ids, ['tiny']);
    });

    test('completions: greedy text, usage and finish_reason equal tfx generate alone', async () => {
        const prompt = 'Once upon a time';
        const expected = generateAlone(model, prompt, 24);
        const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 24, temperature: 0 });
        assert.equal(r.object, 'text_completion');
        assert.equal(r.choices[0].text, expected.text);
        assert.equal(r.choices[0].finish_reason, finishReason(expected, 24));
        assert.equal(r.usage.completion_tokens, expected.new_tokens.length);
        assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    });

    test('completions streamed: the chunks make the same text, then a usage chunk', async () => {
        const prompt = 'The little dog';
        const expected = generateAlone(model, prompt, 20);
        const stream = await client.completions.create({
            model: 'tiny', prompt, max_tokens: 20, temperature: 0, stream: true,
            stream_options: { include_usage: true },
        });
        let text = '', finish = null, usage = null;
        for await (const chunk of stream) {
            if (chunk.usage) usage = chunk.usage;
            for (const c of chunk.choices) {
                text += c.text;
                finish = c.finish_reason ?? finish;
            }
        }
        assert.equal(text, expected.text);
        assert.equal(finish, finishReason(expected, 20));
        assert.equal(usage?.completion_tokens, expected.new_tokens.length);
    });

    test('chat: greedy through the chat template equals tfx generate --chat, whole and streamed', async () => {
        const content = 'Tell me a story about a cat';
        const expected = generateAlone(model, content, 16, ['--chat']);
        const messages = [{ role: 'user', content }];
        const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 16, temperature: 0 });
        assert.equal(r.object, 'chat.completion');
        assert.equal(r.choices[0].message.role, 'assistant');
        assert.equal(r.choices[0].message.content, expected.text);
        assert.equal(r.choices[0].finish_reason, finishReason(expected, 16));

        const stream = await client.chat.completions.create({
            model: 'tiny', messages, max_tokens: 16, temperature: 0, stream: true,
        });
        let text = '', role = null, finish = null;
        for await (const chunk of stream) {
            const c = chunk.choices[0];
            role = role ?? c.delta.role ?? null;
            text += c.delta.content ?? '';
            finish = c.finish_reason ?? finish;
        }
        assert.equal(role, 'assistant');
        assert.equal(text, expected.text);
        assert.equal(finish, finishReason(expected, 16));
    });

    test('chat logprobs: one entry per token, the top alternatives sorted', async () => {
        const r = await client.chat.completions.create({
            model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0,
            logprobs: true, top_logprobs: 3, ignore_eos: true,
        });
        const content = r.choices[0].logprobs.content;
        assert.equal(content.length, r.usage.completion_tokens);
        for (const entry of content) {
            assert.equal(entry.top_logprobs.length, 3);
            assert.ok(entry.logprob <= 0);
            // Greedy: the chosen token is the most likely one.
            assert.equal(entry.logprob, entry.top_logprobs[0].logprob);
            for (let i = 1; i < 3; ++i) assert.ok(entry.top_logprobs[i].logprob <= entry.top_logprobs[i - 1].logprob);
        }
    });

    test('concurrent requests of different lengths each equal tfx generate alone', async () => {
        const prompts = ['Once upon a time', 'Tom had a red ball', 'The sun was', 'Lily went to the park and',
                         'A big bird', 'Sam and Max', 'There was a little', 'One day'];
        const lengths = prompts.map((_, i) => 4 + 5 * i);
        const expected = prompts.map((p, i) => generateAlone(model, p, lengths[i]));
        const answers = await Promise.all(prompts.map((prompt, i) =>
            client.completions.create({ model: 'tiny', prompt, max_tokens: lengths[i], temperature: 0 })));
        answers.forEach((r, i) => assert.equal(r.choices[0].text, expected[i].text, prompts[i]));
    });

    test('errors arrive as the client\'s typed errors, naming the field', async () => {
        const wrongKey = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
        await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
        await assert.rejects(
            client.completions.create({ model: 'tiny', prompt: 'Once', temperature: 3 }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
        await assert.rejects(
            client.chat.completions.create({ model: 'tiny', messages: [] }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
        await assert.rejects(
            client.completions.create({ model: 'not-served', prompt: 'Once' }),
            (e) => e instanceof OpenAI.NotFoundError && e.param === 'model');
        await assert.rejects(
            client.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 100000 }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
    });

    test('a stream the client aborts is cancelled and its KV blocks freed', async () => {
        const controller = new AbortController();
        const stream = await client.completions.create(
            { model: 'tiny', prompt: 'Once upon a time', max_tokens: 400, ignore_eos: true, stream: true },
            { signal: controller.signal });
        // The client's stream ends quietly on abort (it closes the connection).
        let chunks = 0;
        for await (const _ of stream) {
            if (++chunks === 3) controller.abort();
        }
        assert.ok(chunks < 400, `${chunks} chunks arrived after the abort`);
        const deadline = Date.now() + 20000;
        let text;
        do {
            await new Promise((r) => setTimeout(r, 20));
            text = await metrics(running.url);
        } while (!(/^tfx_kv_blocks_in_use 0$/m.test(text) && /status="499"/.test(text)) && Date.now() < deadline);
        assert.match(text, /^tfx_kv_blocks_in_use 0$/m);
        assert.match(text, /^tfx_running_sequences 0$/m);
        assert.match(text, /tfx_requests_total\{route="\/v1\/completions",status="499"\} 1/);
    });
});

// TinyStories' shape with the llama2 tokenizer's 32000 tokens (random weights: JSON's brackets and
// quotes are all in its vocabulary) and Qwen2.5's chat template, made with `tfx init-model`.
function modelForStructuredOutput() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfx-openai-structured-'));
    const config = JSON.parse(fs.readFileSync(path.join(tinystories, 'config.json'), 'utf8'));
    config.vocab_size = 32000;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    const r = spawnSync(tfx, ['init-model', '--config', path.join(dir, 'config.json'), '--out', dir, '--force', '--seed', '5'],
                        { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    fs.copyFileSync(path.join(llama2Tokenizer, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(llama2Tokenizer, 'tokenizer_config.json'), 'utf8'));
    tokenizerConfig.chat_template = JSON.parse(fs.readFileSync(qwenTemplate, 'utf8')).chat_template;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
    return dir;
}

describe('tfx serve structured output (response_format) with the openai client', () => {
    let model, running, client;
    before(async () => {
        model = modelForStructuredOutput();
        running = await startServer(['--model', model, '--served-model-name', 'tiny']);
        client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });
    });
    after(async () => {
        if (running) assert.equal(await stopServer(running.server), 0, running.log.join('\n'));
        fs.rmSync(model, { recursive: true, force: true });
    });
    const messages = [{ role: 'user', content: 'Describe a pet as JSON.' }];

    test('json_schema: every sampled choice parses and has the schema\'s types', async () => {
        const schema = {
            type: 'object',
            properties: {
                name: { type: 'string', maxLength: 10 }, legs: { type: 'integer' },
                kind: { enum: ['dog', 'cat'] }, tags: { type: 'array', items: { type: 'boolean' }, maxItems: 3 },
            },
            required: ['name', 'legs', 'kind', 'tags'], additionalProperties: false,
        };
        for (const seed of [1, 2]) {
            const r = await client.chat.completions.create({
                model: 'tiny', messages, temperature: 1, seed, n: 8, max_tokens: 200,
                response_format: { type: 'json_schema', json_schema: { name: 'pet', schema, strict: true } },
            });
            assert.equal(r.choices.length, 8);
            for (const c of r.choices) {
                const pet = JSON.parse(c.message.content);
                assert.deepEqual(Object.keys(pet), ['name', 'legs', 'kind', 'tags']);
                assert.ok(typeof pet.name === 'string' && pet.name.length <= 10, c.message.content);
                assert.ok(Number.isInteger(pet.legs), c.message.content);
                assert.ok(['dog', 'cat'].includes(pet.kind), c.message.content);
                assert.ok(Array.isArray(pet.tags) && pet.tags.length <= 3 && pet.tags.every((t) => typeof t === 'boolean'));
                assert.equal(c.finish_reason, 'stop');
            }
        }
    });

    test('json_object: a JSON object, streamed too', async () => {
        const stream = await client.chat.completions.create({
            model: 'tiny', messages, temperature: 1, seed: 3, max_tokens: 300, stream: true,
            response_format: { type: 'json_object' },
        });
        let text = '', finish = null;
        for await (const chunk of stream) {
            for (const c of chunk.choices) {
                text += c.delta.content ?? '';
                finish = c.finish_reason ?? finish;
            }
        }
        if (finish === 'stop') {
            const value = JSON.parse(text);
            assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), text);
        } else {
            assert.equal(finish, 'length');  // an unbounded object may run out of tokens
        }
    });

    test('a schema it cannot honour is a 400 naming the keyword', async () => {
        await assert.rejects(
            client.chat.completions.create({
                model: 'tiny', messages, max_tokens: 8,
                response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'integer', minimum: 3 } } },
            }),
            (e) => e instanceof OpenAI.BadRequestError && /minimum is not supported/.test(e.message)
                && e.param === 'response_format.json_schema.schema',
        );
    });
});

describe('tfx serve on SIGTERM', () => {
    test('finishes the stream in progress, then exits 0', async () => {
        const { server, url, log } = await startServer(['--model', tinystories, '--served-model-name', 'tiny']);
        const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
        const stream = await client.completions.create({
            model: 'tiny', prompt: 'Once upon a time', max_tokens: 400, ignore_eos: true, temperature: 0, stream: true,
            stream_options: { include_usage: true },
        });
        let exited = null, text = '', finish = null, usage = null;
        for await (const chunk of stream) {
            if (exited === null) exited = stopServer(server);  // SIGTERM after the first chunk
            if (chunk.usage) usage = chunk.usage;
            for (const c of chunk.choices) {
                text += c.text;
                finish = c.finish_reason ?? finish;
            }
        }
        assert.equal(finish, 'length');
        assert.equal(usage?.completion_tokens, 400);
        assert.equal(text, generateAlone(tinystories, 'Once upon a time', 400, ['--ignore-eos']).text);
        assert.equal(await exited, 0, log.join('\n'));
        assert.ok(log.some((line) => /SIGTERM, finishing 1 request/.test(line)), log.join('\n'));
    });
});

describe('tfx serve /v1/embeddings with the openai client (a base encoder model)', () => {
    let model, running, client;
    const golden = JSON.parse(fs.readFileSync(bertGolden, 'utf8')).prompts;
    const unit = (v) => {
        const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
        return v.map((x) => x / norm);
    };
    const assertClose = (actual, expected, what) => {
        assert.equal(actual.length, expected.length, what);
        actual.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-4, `${what}[${i}]: ${x} vs ${expected[i]}`));
    };
    before(async () => {
        model = bertWithTokenizer();
        running = await startServer(['--model', model, '--served-model-name', 'bert', '--step-tokens', '16']);
        client = new OpenAI({ baseURL: `${running.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
    });
    after(async () => {
        if (running) assert.equal(await stopServer(running.server), 0, running.log.join('\n'));
        fs.rmSync(model, { recursive: true, force: true });
    });

    test('texts, in one request and several at once, embed as transformers mean-pools, unit length', async () => {
        const texts = golden.map((p) => p.input_ids.map((id) => `w${id}`).join(' '));
        const expected = golden.map((p) => unit(p.mean_pooled));
        // The client asks for base64 by default and decodes it; float is asked for explicitly.
        for (const encoding_format of [undefined, 'float']) {
            const r = await client.embeddings.create({ model: 'bert', input: texts, encoding_format });
            assert.equal(r.data.length, texts.length);
            r.data.forEach((d, i) => {
                assert.equal(d.index, i);
                assertClose(d.embedding, expected[i], `${golden[i].name} (${encoding_format ?? 'base64'})`);
            });
            assert.equal(r.usage.prompt_tokens, golden.reduce((a, p) => a + p.input_ids.length, 0));
        }
        // One request per input, all in flight together (batched across requests, 16 tokens a pass).
        const answers = await Promise.all(golden.map((p) => client.embeddings.create({ model: 'bert', input: p.input_ids })));
        answers.forEach((r, i) => assertClose(r.data[0].embedding, expected[i], `${golden[i].name} alone`));
    });

    test('bad input and generation routes get typed errors naming the field', async () => {
        await assert.rejects(client.embeddings.create({ model: 'bert', input: [] }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'input');
        await assert.rejects(client.embeddings.create({ model: 'bert', input: [[1, 384]] }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'input' && /vocabulary/.test(e.message));
        await assert.rejects(client.embeddings.create({ model: 'bert', input: Array(300).fill('w1').join(' ') }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'input' && /at most 256/.test(e.message));
        await assert.rejects(client.embeddings.create({ model: 'bert', input: 'w1', dimensions: 8 }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'dimensions');
        await assert.rejects(client.completions.create({ model: 'bert', prompt: 'w1' }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'model' && /embeddings/.test(e.message));
        assert.equal((await fetch(`${running.url}/health`)).status, 200);
    });
});
