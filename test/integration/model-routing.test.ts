import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * Model per place and the fallback, end to end (gateway, queue, worker, real sandbox, fake Ollama
 * that records the model each request names): a rule sends one conversation to one model and the
 * rest to the default; a missing or failing model is replaced by the fallback and the reply says so;
 * when the fallback fails too, the user is told about both.
 */

const DEFAULT = 'qwen2.5:7b';
const RULED = 'llama3.2:1b';
const FALLBACK = 'qwen2.5:3b';
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-model-routing-'));
const config = testConfig(testInstance('routing'), {
  SANDBOT_MODEL: DEFAULT,
  SANDBOT_MODEL_RULES: `web:ruled=${RULED}`,
  SANDBOT_MODEL_FALLBACK: FALLBACK,
  SANDBOT_AUDIT_DIR: dir,
});
const journal = new AuditJournal(dir, config.SANDBOT_INSTANCE);
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
/** Requests each model failed with HTTP 500 before answering (per model, counted down). */
const failFirst = new Map<string, number>();

beforeAll(async () => {
  ollama = await startFakeOllama({
    models: [DEFAULT, RULED, FALLBACK],
    script: (request) => {
      const left = failFirst.get(request.model) ?? 0;
      if (left > 0) {
        failFirst.set(request.model, left - 1);
        return { status: 500, error: 'llama runner process has terminated' };
      }
      return { reply: `answer from ${request.model}` };
    },
  });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  stack = await startStack(config);
});

afterAll(async () => {
  await stack?.stop();
  await ollama?.close();
  await cleanInstance(config);
  rmSync(dir, { recursive: true, force: true });
});

/** Sends a message and returns what the user gets: the reply's text, or "error: …". */
async function say(session: string, text: string): Promise<string> {
  const sse = await openSse(`${stack.url}/api/conversations/${session}/events`);
  try {
    const before = sse.events.length;
    await postMessage(stack.url, session, text);
    const end = await sse.waitFor(
      (e) => sse.events.indexOf(e) >= before && (e.type === 'reply' || e.type === 'error'),
    );
    return end.type === 'reply' ? end.text : `error: ${end.type === 'error' ? end.message : ''}`;
  } finally {
    sse.close();
  }
}

const modelsAsked = (from: number) =>
  ollama
    .chatRequests()
    .slice(from)
    .map((r) => r.model);

describe('the model per place', () => {
  it('sends a conversation a rule covers to its model, and the others to the default', async () => {
    const from = ollama.chatRequests().length;
    expect(await say('ruled', 'hello')).toBe(`answer from ${RULED}`);
    expect(await say('other', 'hello')).toBe(`answer from ${DEFAULT}`);
    expect(modelsAsked(from)).toEqual([RULED, DEFAULT]);
  });
});

describe('the fallback model', () => {
  it('answers at once when the chosen model is missing, the reply and the audit saying so', async () => {
    ollama.setModels([DEFAULT, FALLBACK]);
    const from = ollama.chatRequests().length;
    try {
      expect(await say('ruled', 'are you there?')).toBe(
        `answer from ${FALLBACK}\n\n(Answered by ${FALLBACK}: ${RULED} was unavailable, it is not installed on the model server.)`,
      );
      expect(modelsAsked(from)).toEqual([RULED, FALLBACK]);
    } finally {
      ollama.setModels([DEFAULT, RULED, FALLBACK]);
    }
    const response = await lastModelResponse('ruled');
    expect(response).toMatchObject({ model: RULED, ok: true, answeredBy: FALLBACK });
    expect(response?.fallbackReason).toMatch(/llama3\.2:1b is not pulled/);
  });

  it('answers when the chosen model failed twice in a row, not after one failure', async () => {
    failFirst.set(DEFAULT, 1);
    let from = ollama.chatRequests().length;
    expect(await say('flaky', 'one failure')).toBe(`answer from ${DEFAULT}`);
    expect(modelsAsked(from)).toEqual([DEFAULT, DEFAULT]);
    failFirst.set(DEFAULT, 2);
    from = ollama.chatRequests().length;
    expect(await say('flaky', 'two failures')).toBe(
      `answer from ${FALLBACK}\n\n(Answered by ${FALLBACK}: ${DEFAULT} was unavailable, it failed twice in a row.)`,
    );
    expect(modelsAsked(from)).toEqual([DEFAULT, DEFAULT, FALLBACK]);
  });

  it('tells the user about both models when the fallback fails too', async () => {
    ollama.setModels([DEFAULT]);
    try {
      const answer = await say('ruled', 'anyone?');
      expect(answer).toMatch(/^error: /);
      expect(answer).toContain('Neither model could answer.');
      expect(answer).toContain(`${RULED}: model ${RULED} is not pulled: run \`ollama pull ${RULED}\``);
      expect(answer).toContain(`The fallback ${FALLBACK}: model ${FALLBACK} is not pulled`);
    } finally {
      ollama.setModels([DEFAULT, RULED, FALLBACK]);
    }
    // And the conversation works again once the model is back.
    expect(await say('ruled', 'back?')).toBe(`answer from ${RULED}`);
  });
});

/** The conversation's last model.response in its audit file, once written. */
async function lastModelResponse(session: string) {
  const conversation = webConversationId(session);
  for (let i = 0; i < 100; i++) {
    const events = parseEvents((await journal.read(conversation)) ?? '');
    const finished = events.filter((e) => e.kind === 'turn.finished').length;
    const started = events.filter((e) => e.kind === 'turn.started').length;
    if (started > 0 && finished === started) {
      return events.filter((e) => e.kind === 'model.response').at(-1)?.data as
        | Record<string, unknown>
        | undefined;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}
