import { createServer } from 'node:net';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES } from '../../src/cli/doctor/checks.js';
import { doctorReport } from '../../src/cli/doctor/report.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import type { DoctorCheck } from '../../src/contracts/doctor/check.js';
import { type FakeOpenAI, startFakeOpenAI } from '../../testkit/fakes/fake-openai.js';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { REDIS_URL } from '../../testkit/redis.js';

/** `sandbot doctor` with SANDBOT_MODEL_PROVIDER=openai: the endpoint and the model, with a fix for each failure. */

const MODEL = 'qwen2.5-7b-instruct';
const KEY = 'sk-doctor-test-5d2e8a41';
const docker = new Docker();
let fake: FakeOpenAI;

beforeAll(async () => {
  fake = await startFakeOpenAI({ models: [MODEL, 'llama-3.2-1b'], apiKey: KEY });
});
afterAll(() => fake?.close());

async function doctor(env: Record<string, string>) {
  const config = parseConfig({
    SANDBOX_IMAGE,
    SANDBOX_RUNTIME: 'runc',
    SANDBOT_MODEL_PROVIDER: 'openai',
    SANDBOT_MODEL_URL: fake.url,
    SANDBOT_MODEL_API_KEY: KEY,
    SANDBOT_MODEL: MODEL,
    ...env,
  });
  const report = await doctorReport({ config, docker, redisUrl: REDIS_URL });
  const byName = (name: string): DoctorCheck => {
    const check = report.checks.find((c) => c.name === name);
    if (!check) throw new Error(`no "${name}" check in ${JSON.stringify(report.checks)}`);
    return check;
  };
  return { report, server: byName(CHECK_NAMES.modelServer), model: byName(CHECK_NAMES.model) };
}

describe('sandbot doctor with an OpenAI-compatible server', () => {
  it('passes when the server answers with the key and serves the model; the key never shown', async () => {
    const { report, server, model } = await doctor({});
    expect(report.checks.map((c) => c.name)).not.toContain(CHECK_NAMES.ollama);
    expect(server).toEqual({
      name: CHECK_NAMES.modelServer,
      ok: true,
      detail: `OpenAI-compatible server, 2 models at ${fake.url} (API key set)`,
    });
    expect(model).toEqual({ name: CHECK_NAMES.model, ok: true, detail: `${MODEL} is served` });
    expect(report.ok).toBe(true);
    expect(report.text).not.toContain(KEY);
    expect(fake.requests.at(-1)?.authorization).toBe(`Bearer ${KEY}`);
  });

  it('says the endpoint is down, and where to point SANDBOT_MODEL_URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const url = `http://127.0.0.1:${port}/v1`;
    const { report, server, model } = await doctor({ SANDBOT_MODEL_URL: url });
    expect(server).toMatchObject({
      ok: false,
      detail: `cannot reach the model server at ${url}: connection refused`,
    });
    expect(server.fix).toBe(
      `start the OpenAI-compatible server (vLLM, llama-server, …), or set SANDBOT_MODEL_URL (${url}) to where it runs`,
    );
    expect(model).toMatchObject({
      ok: false,
      detail: `not checked: the model server does not answer (${MODEL})`,
    });
    expect(report.text).toContain(`✗ ${CHECK_NAMES.modelServer}: cannot reach the model server`);
  });

  it('says the key is refused (401), without showing it', async () => {
    const { report, server } = await doctor({ SANDBOT_MODEL_API_KEY: 'sk-wrong-key-123' });
    expect(server.ok).toBe(false);
    expect(server.detail).toBe(
      `the model server at ${fake.url} refused the request (HTTP 401: Incorrect API key provided.); check SANDBOT_MODEL_API_KEY: the server does not accept the key it holds`,
    );
    expect(server.fix).toBe('set SANDBOT_MODEL_API_KEY to a key the server accepts');
    expect(report.text).not.toContain('sk-wrong-key-123');
  });

  it('says the model is not served, listing the ones that are', async () => {
    const { report, model } = await doctor({ SANDBOT_MODEL: 'gpt-oss-20b' });
    expect(model).toEqual({
      name: CHECK_NAMES.model,
      ok: false,
      detail: `model gpt-oss-20b is not served by ${fake.url} (it serves: ${MODEL}, llama-3.2-1b)`,
      fix: `set SANDBOT_MODEL to one of: ${MODEL}, llama-3.2-1b; or start the server with gpt-oss-20b`,
    });
    expect(report.ok).toBe(false);
  });
});
