import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';

// The broker's tests exercise the streamed /api/chat; these cover what they do not.

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
}

describe('fake Ollama', () => {
  let fake: FakeOllama;
  beforeAll(async () => {
    fake = await startFakeOllama({ models: ['qwen2.5:7b', 'llama3:latest'] });
  });
  afterAll(() => fake.close());

  it('answers stream:false with one message holding the text and the tool calls', async () => {
    fake.setScript([{ reply: 'Running it.', toolCalls: [{ name: 'bash', arguments: { command: 'ls' } }] }]);
    const res = await post(`${fake.url}/api/chat`, { model: 'qwen2.5:7b', messages: [], stream: false });
    expect(res.headers.get('content-type')).toContain('application/json');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      done: true,
      done_reason: 'stop',
      message: {
        role: 'assistant',
        content: 'Running it.',
        tool_calls: [{ function: { name: 'bash', arguments: { command: 'ls' } } }],
      },
    });
  });

  it('answers like Ollama for unknown models, untagged names and model lists', async () => {
    const missing = await post(`${fake.url}/api/chat`, { model: 'nope', messages: [] });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "model 'nope' not found" });
    expect((await post(`${fake.url}/api/show`, { model: 'llama3' })).status).toBe(200);
    const tags = (await (await fetch(`${fake.url}/api/tags`)).json()) as { models: { name: string }[] };
    expect(tags.models.map((m) => m.name)).toEqual(['qwen2.5:7b', 'llama3:latest']);
  });

  it('fails a request the script has no step for, in words', async () => {
    fake.setScript([]);
    const res = await post(`${fake.url}/api/chat`, { model: 'qwen2.5:7b', messages: [] });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'fake ollama: no scripted step left for this request' });
  });
});

describe('fake Ollama in its own process', () => {
  let child: ChildProcess;
  let url: string;
  beforeAll(async () => {
    const file = fileURLToPath(new URL('../../testkit/fakes/fake-ollama.ts', import.meta.url));
    child = spawn(process.execPath, ['--import', 'tsx', file, '--models', 'tiny:1b'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
    url = line.toString().trim();
  });
  afterAll(async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  });

  it('prints its URL and is driven over HTTP', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await post(`${url}/__fake/script`, { steps: [{ hold: 'h1', reply: 'late hello' }] });
    const pending = post(`${url}/api/chat`, { model: 'tiny:1b', messages: [], stream: false });
    await post(`${url}/__fake/release`, { id: 'h1' });
    const body = (await (await pending).json()) as { message: { content: string } };
    expect(body.message.content).toBe('late hello');
    const requests = (await (await fetch(`${url}/__fake/requests`)).json()) as { path: string }[];
    expect(requests.map((r) => r.path)).toContain('/api/chat');
  });
});
