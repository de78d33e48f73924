import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import type { FakeOpenAIRequest, FakeOpenAIStep } from '../../testkit/fakes/fake-openai.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { type OpenAIStack, startOpenAIStack } from '../helpers/openai-stack.js';
import { replyText, turnEnd } from '../helpers/shell-model.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * The real stack with SANDBOT_MODEL_PROVIDER=openai against a fake OpenAI-compatible server (as vLLM
 * streams): tool calls sent in pieces run in the real sandbox, the API key goes on every request and
 * never into the sandbox, usage counts against the turn's token budget, reasoning never reaches the
 * chat or the history, and every failure is a clear message after which the conversation goes on.
 */

const KEY = 'sk-sandbot-test-7f3a9c1e5b';
const BUDGET = 20_000;

/** Runs `run: <command>` in the sandbox; thinks out loud (reasoning_content) at every step. */
function model(request: FakeOpenAIRequest): FakeOpenAIStep {
  const last = request.messages.at(-1);
  const text = last?.content ?? '';
  const thinking = `secret reasoning ${request.messages.length}`;
  if (last?.role === 'tool') return { thinking, reply: `<think>secret tag</think>tool said: ${text}` };
  if (text.startsWith('run: ')) {
    return { thinking, toolCalls: [{ name: 'bash', arguments: { command: text.slice(5) } }] };
  }
  if (text.startsWith('hermes: ')) {
    const call = JSON.stringify({ name: 'bash', arguments: { command: text.slice(8) } });
    return { reply: `<tool_call>${call}</tool_call>` };
  }
  if (text.startsWith('expensive: ')) {
    // A small request the server says cost more than the whole budget.
    return {
      toolCalls: [{ name: 'bash', arguments: { command: 'echo never' } }],
      usage: { prompt_tokens: BUDGET * 2, completion_tokens: 10 },
    };
  }
  return { thinking, reply: `you said: ${text}` };
}

const config = testConfig(testInstance('openai'), {
  SANDBOT_MODEL: 'qwen2.5-7b-instruct',
  SANDBOT_MAX_TOKENS_PER_TURN: String(BUDGET),
});
let stack: OpenAIStack;

const keyBefore = process.env.SANDBOT_MODEL_API_KEY;
beforeAll(async () => {
  // In the worker's own environment too, as `sandbot up` has it: it must still not reach a sandbox.
  process.env.SANDBOT_MODEL_API_KEY = KEY;
  stack = await startOpenAIStack(config, model, { apiKey: KEY });
});
afterAll(async () => {
  if (keyBefore === undefined) delete process.env.SANDBOT_MODEL_API_KEY;
  else process.env.SANDBOT_MODEL_API_KEY = keyBefore;
  await stack?.stop();
});

/** turnEnd on a stack just started: its event stream answers 503 until its Redis connection is up. */
async function firstTurn(url: string, session: string, text: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await turnEnd(url, session, text);
    } catch (error) {
      if (attempt >= 20 || !String(error).includes('answered 503')) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const sentToModel = () => JSON.stringify(stack.openai.chatRequests().map((r) => r.messages));

describe('the openai provider through the real stack', () => {
  it('runs a tool call streamed in pieces in the sandbox, and replies; the key never reaches it', async () => {
    const text = await replyText(stack.url, 'oa-tool', 'run: echo chunked-$((6*7)) && id -u');
    expect(text).toBe('tool said: exit code 0\nchunked-42\n1000');
    // The sandbox's whole environment: no key, not even the setting's name.
    const env = await replyText(stack.url, 'oa-env', 'run: env');
    expect(env).toMatch(/^tool said: exit code 0\n/);
    expect(env).toContain('PATH=');
    expect(env).not.toContain(KEY);
    expect(env).not.toContain('SANDBOT_MODEL_API_KEY');
    // Every request the worker made (chats, and the readiness checks' GET /models) carried the key.
    expect(stack.openai.requests.length).toBeGreaterThanOrEqual(4);
    expect(stack.openai.requests.filter((r) => r.authorization !== `Bearer ${KEY}`)).toEqual([]);
  });

  it('reports the model server in /readyz (the check named ollama, for either provider)', async () => {
    const body = (await (await fetch(`${stack.url}/readyz`)).json()) as {
      checks: Record<string, { ok: boolean; detail?: string }>;
    };
    expect(body.checks.ollama).toEqual({ ok: true, detail: 'OpenAI-compatible server, 1 model' });
  });

  it('runs a call written in the content (<tool_call>) too', async () => {
    const text = await replyText(stack.url, 'oa-hermes', 'hermes: echo written-$((2+3))');
    expect(text).toBe('tool said: exit code 0\nwritten-5');
  });

  it('keeps reasoning_content and <think> out of the reply and the history sent back', async () => {
    expect(await replyText(stack.url, 'oa-think', 'hello')).toBe('you said: hello');
    await replyText(stack.url, 'oa-think', 'run: echo again');
    const history = stack.openai.chatRequests().at(-1)?.messages ?? [];
    expect(JSON.stringify(history)).toContain('you said: hello');
    expect(sentToModel()).not.toContain('secret');
  });

  it('counts the usage the server reports against the turn’s token budget', async () => {
    const ended = await turnEnd(stack.url, 'oa-budget', 'expensive: anything');
    expect(ended.type === 'error' && ended.message).toBe(
      `The agent used its budget of ${BUDGET} model tokens for one turn.`,
    );
    expect(await replyText(stack.url, 'oa-budget', 'still there?')).toBe('you said: still there?');
  });

  it('turns each failure into a clear message in chat and the audit; the conversation goes on', async () => {
    const expectations: [FakeOpenAIStep | 'wrong key' | 'no model', RegExp][] = [
      [
        { status: 429, error: 'Rate limit reached', retryAfter: 12 },
        /is rate limiting requests .*retry after 12 s$/,
      ],
      [{ status: 500, error: 'engine crashed' }, /failed \(HTTP 500\): engine crashed$/],
      [{ reply: 'a long answer', cut: true }, /ended its answer before it was complete/],
      [
        { reply: 'text then garbage', garbage: true },
        /could not be read \(a server-sent event that is not JSON\)/,
      ],
      [
        'wrong key',
        /refused the request \(HTTP 401: Incorrect API key provided\.\); check SANDBOT_MODEL_API_KEY/,
      ],
      ['no model', /model qwen2\.5-7b-instruct is not served by http:\/\/127\.0\.0\.1:\d+\/v1/],
    ];
    const { openai } = stack;
    try {
      for (const [failure, words] of expectations) {
        if (failure === 'wrong key') openai.setApiKey('sk-another-key');
        else if (failure === 'no model') openai.setModels(['some-other-model']);
        else openai.setScript([failure]);
        const ended = await turnEnd(stack.url, 'oa-errors', 'hello');
        expect(ended.type === 'error' && ended.message).toMatch(words);
        expect(ended.type === 'error' && ended.message).not.toContain(KEY);
        openai.setApiKey(KEY);
        openai.setModels([config.SANDBOT_MODEL]);
        openai.setScript(model);
        expect(await replyText(stack.url, 'oa-errors', 'back?')).toBe('you said: back?');
      }
    } finally {
      openai.setApiKey(KEY);
      openai.setModels([config.SANDBOT_MODEL]);
      openai.setScript(model);
    }
    const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);
    const events = parseEvents((await journal.read(webConversationId('oa-errors'))) ?? '');
    const failed = events
      .filter((e) => e.kind === 'model.response' && (e.data as { ok: boolean }).ok === false)
      .map((e) => String((e.data as { error?: string }).error));
    expect(failed).toHaveLength(expectations.length);
    for (const [i, [, words]] of expectations.entries()) expect(failed[i]).toMatch(words);
    expect(JSON.stringify(events)).not.toContain(KEY);
  });

  it('says the server cannot be reached, at which address', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const url = `http://127.0.0.1:${port}/v1`;
    const gone = testConfig(testInstance('openai-gone'), {
      SANDBOT_MODEL_PROVIDER: 'openai',
      SANDBOT_MODEL_URL: url,
      SANDBOT_MODEL_API_KEY: KEY,
    });
    const down = await startStack(gone);
    try {
      const ended = await firstTurn(down.url, 'oa-gone', 'hello');
      expect(ended.type === 'error' && ended.message).toBe(
        `cannot reach the model server at ${url}: connection refused`,
      );
      const ready = await fetch(`${down.url}/readyz`);
      const body = (await ready.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
      expect(ready.status).toBe(503);
      expect(body.checks.ollama).toMatchObject({
        ok: false,
        detail: expect.stringContaining(`cannot reach the model server at ${url}: connection refused`),
      });
    } finally {
      await down.stop();
      await cleanInstance(gone);
    }
  });
});
