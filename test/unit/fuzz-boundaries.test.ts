import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  InteractionCreate,
  MessageCreate,
  toSlashCommand,
  toUserMessage,
} from '../../adapters/discord/payloads.js';
import { classifyEvent, SlackEventBody } from '../../adapters/slack/slack-event.js';
import { describeIssues, postMessageBody } from '../../adapters/web/message-request.js';
import { RuntimeToWorker, WorkerToRuntime } from '../../src/contracts/protocol/agent.js';
import { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { LineDecoder } from '../../src/contracts/protocol/lines.js';
import { ModelBrokerError } from '../../src/worker/broker/errors.js';
import { addChunk, emptyReply, finishReply } from '../../src/worker/broker/reply.js';

/**
 * Property tests of every parser at a boundary: whatever arrives (random JSON, mutated valid payloads,
 * random bytes), the parser answers "valid" or names the problem in words; it never throws past itself.
 */

const RUNS = { numRuns: 300 };
const BOT = '111111111111111111';

/** Random JSON-ish values, deep and wide enough to hit nested schemas. */
const anyJson = fc.jsonValue({ maxDepth: 4 });

/** A valid payload with one field replaced by a random value (or removed): near-misses find more. */
function mutated(valid: Record<string, unknown>) {
  const keys = Object.keys(valid);
  return fc.tuple(fc.constantFrom(...keys), fc.option(anyJson, { nil: undefined })).map(([key, value]) => {
    const copy: Record<string, unknown> = { ...valid };
    if (value === undefined) delete copy[key];
    else copy[key] = value;
    return copy;
  });
}

const slackEvent = {
  type: 'event_callback',
  team_id: 'T1',
  event: { type: 'message', user: 'U1', channel: 'C1', text: 'hi <@UBOT>', ts: '1700000000.000100' },
};
const discordMessage = {
  id: '222222222222222222',
  channel_id: '333333333333333333',
  guild_id: '444444444444444444',
  author: { id: '555555555555555555', username: 'alice' },
  content: `<@${BOT}> count the lines`,
  mentions: [{ id: BOT, username: 'sandbot' }],
  attachments: [],
};
const discordCommand = {
  id: '666666666666666666',
  application_id: '777777777777777777',
  type: 2,
  token: 'token',
  channel_id: '333333333333333333',
  guild_id: '444444444444444444',
  member: { user: { id: '555555555555555555', username: 'alice' }, roles: [] },
  data: { name: 'ask', options: [{ name: 'task', type: 3, value: 'go' }] },
};

describe('fuzz: chat events', () => {
  it('Slack event bodies: parsed or refused with a reason, and classified without throwing', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyJson,
          mutated(slackEvent),
          mutated(slackEvent.event).map((event) => ({ ...slackEvent, event })),
        ),
        (body) => {
          const parsed = SlackEventBody.safeParse(body);
          if (!parsed.success) {
            expect(parsed.error.issues[0]?.message).toBeTruthy();
            return;
          }
          const classified = classifyEvent(parsed.data, 'UBOT');
          expect(['ignore', 'intake']).toContain(classified.kind);
        },
      ),
      RUNS,
    );
  });

  it('Discord MESSAGE_CREATE and INTERACTION_CREATE: parsed or refused, never a throw', () => {
    fc.assert(
      fc.property(fc.oneof(anyJson, mutated(discordMessage)), (payload) => {
        const parsed = MessageCreate.safeParse(payload);
        if (parsed.success) expect(toUserMessage(parsed.data, BOT).kind).toBeTruthy();
        else expect(parsed.error.issues.length).toBeGreaterThan(0);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.oneof(
          anyJson,
          mutated(discordCommand),
          mutated(discordCommand.data).map((data) => ({ ...discordCommand, data })),
        ),
        (payload) => {
          const parsed = InteractionCreate.safeParse(payload);
          if (parsed.success) {
            const command = toSlashCommand(parsed.data);
            if (command) expect(typeof command.name).toBe('string');
          } else expect(parsed.error.issues.length).toBeGreaterThan(0);
        },
      ),
      RUNS,
    );
  });
});

describe('fuzz: web API bodies', () => {
  const schema = postMessageBody(8000);
  const valid = { conversation: 'chat-1', user: 'alice', text: 'hello' };

  it('accepts exactly the valid bodies and names the field of every refusal', () => {
    fc.assert(
      fc.property(fc.oneof(anyJson, mutated(valid), fc.dictionary(fc.string(), anyJson)), (body) => {
        const parsed = schema.safeParse(body);
        if (parsed.success) {
          expect(Object.keys(parsed.data).sort()).toEqual(['conversation', 'text', 'user']);
          return;
        }
        const message = describeIssues(parsed.error);
        expect(message).toMatch(/^(body|conversation|user|text)\b/);
      }),
      RUNS,
    );
  });

  it('never lets a bad inbound job through: random jobs are refused by the queue schema', () => {
    fc.assert(
      fc.property(anyJson, (job) => {
        const parsed = InboundMessage.safeParse(job);
        // Random values cannot carry a conversation id, an id and a timestamp by chance.
        expect(parsed.success).toBe(false);
      }),
      RUNS,
    );
  });
});

describe('fuzz: protocol lines', () => {
  const validLine = `${JSON.stringify({ type: 'ready', version: '1' })}\n`;

  it('any byte stream, split anywhere, yields parsed lines or named errors, within the size cap', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.string(), fc.constant(validLine), fc.constant('\n'), fc.string({ unit: 'binary' })),
          {
            maxLength: 30,
          },
        ),
        fc.integer({ min: 16, max: 256 }),
        (chunks, maxLineBytes) => {
          const decoder = new LineDecoder(RuntimeToWorker, maxLineBytes);
          for (const chunk of chunks) {
            for (const result of decoder.push(chunk)) {
              if (result.ok) expect(RuntimeToWorker.safeParse(result.value).success).toBe(true);
              else expect(result.error).toMatch(/^protocol line /);
            }
          }
        },
      ),
      RUNS,
    );
  });

  it('random JSON messages in either direction are refused unless they are well-formed', () => {
    fc.assert(
      fc.property(anyJson, (message) => {
        const line = JSON.stringify(message);
        for (const schema of [RuntimeToWorker, WorkerToRuntime]) {
          const [result] = new LineDecoder(schema, 1 << 20).push(`${line}\n`);
          if (result && !result.ok)
            expect(result.error).toMatch(/^protocol line (is not JSON|does not match)/);
        }
      }),
      RUNS,
    );
  });
});

describe('fuzz: model replies', () => {
  it('streamed chunks are folded or refused as a ModelBrokerError, and the result is a valid message', () => {
    const chunk = fc.oneof(
      anyJson,
      fc.record({ message: fc.record({ content: fc.string() }), done: fc.boolean() }),
      fc.record({ message: fc.record({ tool_calls: fc.array(anyJson, { maxLength: 3 }) }) }),
    );
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 8 }), (chunks) => {
        try {
          let state = emptyReply();
          for (const c of chunks) state = addChunk(state, c).state;
          const message = finishReply(state);
          expect(message.role).toBe('assistant');
        } catch (error) {
          expect(error).toBeInstanceOf(ModelBrokerError);
          expect((error as Error).message.length).toBeGreaterThan(10);
        }
      }),
      RUNS,
    );
  });
});
