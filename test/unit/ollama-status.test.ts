import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelBroker, ModelBrokerError } from '../../src/worker/broker/model-broker.js';

/**
 * Ollama behind something that answers 401, 429 (with retry-after) or 503, as a proxy in front of it
 * does: each read as words an operator can act on, the retry-after kept.
 */

let answer: { status: number; body: string; type: string; headers?: Record<string, string> };
let server: Server;
let broker: ModelBroker;

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(answer.status, { 'content-type': answer.type, ...answer.headers });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  broker = new ModelBroker({ host: `http://127.0.0.1:${port}`, timeoutMs: 5000 });
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function failure(): Promise<ModelBrokerError> {
  const error = await broker.chat({ model: 'qwen2.5:7b', messages: [{ role: 'user', content: 'hi' }] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelBrokerError);
  return error as ModelBrokerError;
}

describe('Ollama behind a proxy that says no', () => {
  it('401: unauthorized, saying the ollama provider sends no credentials', async () => {
    answer = { status: 401, body: 'Unauthorized', type: 'text/plain' };
    const error = await failure();
    expect(error.kind).toBe('unauthorized');
    expect(error.message).toMatch(
      /^Ollama at http:\/\/127\.0\.0\.1:\d+ refused the request \(HTTP 401: Unauthorized\)/,
    );
    expect(error.message).toContain('SANDBOT_MODEL_PROVIDER=openai with SANDBOT_MODEL_API_KEY');
  });

  it('429: rate_limited, with the retry-after it sent (a JSON body or a text one)', async () => {
    answer = {
      status: 429,
      body: JSON.stringify({ error: 'too many requests' }),
      type: 'application/json',
      headers: { 'retry-after': '9' },
    };
    const json = await failure();
    expect(json.kind).toBe('rate_limited');
    expect(json.message).toMatch(/is busy \(HTTP 429: too many requests\); retry after 9 s$/);
    answer = { status: 429, body: 'slow down', type: 'text/plain' };
    expect((await failure()).message).toMatch(/\(HTTP 429: slow down\); try again in a moment$/);
  });

  it('503: server_error with the proxy’s words', async () => {
    answer = { status: 503, body: '<html>Service Unavailable</html>', type: 'text/html' };
    const error = await failure();
    expect(error.kind).toBe('server_error');
    expect(error.message).toBe('Ollama failed (HTTP 503): <html>Service Unavailable</html>');
  });
});
