import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { classifyOllamaError, ModelBrokerError, UNREADABLE_PREFIX } from '../../src/worker/broker/errors.js';

const ctx = { host: 'http://127.0.0.1:11434', model: 'qwen2.5:7b', timeoutMs: 120_000 };

/** What the ollama client throws for a non-2xx answer: an Error carrying `status_code`. */
function responseError(status: number, message: string): Error {
  return Object.assign(new Error(message), { name: 'ResponseError', status_code: status });
}

async function realFetchError(url: string): Promise<unknown> {
  return fetch(url).then(
    () => {
      throw new Error(`expected ${url} to fail`);
    },
    (e: unknown) => e,
  );
}

describe('classifyOllamaError', () => {
  it('names a refused connection (the error fetch really throws)', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const error = classifyOllamaError(await realFetchError(`http://127.0.0.1:${port}/api/chat`), ctx);
    expect(error.kind).toBe('unreachable');
    expect(error.message).toBe('cannot reach Ollama at http://127.0.0.1:11434: connection refused');
  });

  it('names an unknown host', () => {
    const thrown = new TypeError('fetch failed', {
      cause: Object.assign(new Error('getaddrinfo ENOTFOUND ollama'), { code: 'ENOTFOUND' }),
    });
    const error = classifyOllamaError(thrown, ctx);
    expect(error.kind).toBe('unreachable');
    expect(error.message).toBe('cannot reach Ollama at http://127.0.0.1:11434: host name not found');
  });

  it('says how long it waited on a timeout', () => {
    const error = classifyOllamaError(new DOMException('late', 'TimeoutError'), ctx);
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe('Ollama did not answer within 120 s');
    expect(
      classifyOllamaError(new DOMException('late', 'TimeoutError'), { ...ctx, timeoutMs: 1500 }).message,
    ).toBe('Ollama did not answer within 1.5 s');
  });

  it('tells a cancel from a timeout', () => {
    expect(classifyOllamaError(new DOMException('stop', 'AbortError'), ctx).kind).toBe('cancelled');
  });

  it('tells the operator to pull a missing model, in both of Ollama’s wordings', () => {
    for (const words of [
      "model 'qwen2.5:7b' not found",
      'model "qwen2.5:7b" not found, try pulling it first',
    ]) {
      const error = classifyOllamaError(responseError(404, words), ctx);
      expect(error.kind).toBe('model_missing');
      expect(error.message).toBe('model qwen2.5:7b is not pulled: run `ollama pull qwen2.5:7b`');
    }
    const unnamed = classifyOllamaError(responseError(404, "model 'llama3:8b' not found"), {
      ...ctx,
      model: undefined,
    });
    expect(unnamed.message).toBe('model llama3:8b is not pulled: run `ollama pull llama3:8b`');
  });

  it('keeps Ollama’s words for server failures and refused requests', () => {
    const failed = classifyOllamaError(responseError(500, 'llama runner process has terminated'), ctx);
    expect(failed.kind).toBe('server_error');
    expect(failed.message).toBe('Ollama failed (HTTP 500): llama runner process has terminated');

    const refused = classifyOllamaError(responseError(400, '"qwen2.5:7b" does not support tools'), ctx);
    expect(refused.kind).toBe('bad_response');
    expect(refused.message).toContain('does not support tools');

    const midStream = classifyOllamaError(new Error('out of memory'), ctx);
    expect(midStream.kind).toBe('server_error');
    expect(midStream.message).toBe('Ollama failed: out of memory');
  });

  it('calls unreadable answers bad responses', () => {
    expect(classifyOllamaError(new SyntaxError('Unexpected token <'), ctx).kind).toBe('bad_response');
    const cut = classifyOllamaError(new Error('Did not receive done or success response in stream.'), ctx);
    expect(cut.kind).toBe('bad_response');
    const garbage = classifyOllamaError(
      new Error(`${UNREADABLE_PREFIX}a line that is not a JSON object: "x"`),
      ctx,
    );
    expect(garbage.kind).toBe('bad_response');
    expect(garbage.message).toBe(
      'Ollama at http://127.0.0.1:11434 sent a line that is not a JSON object: "x"',
    );
  });

  it('passes its own errors through unchanged', () => {
    const own = new ModelBrokerError(
      'bad_response',
      'the model answered something that is not a valid chat message: x',
    );
    expect(classifyOllamaError(own, ctx)).toBe(own);
  });
});
