import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import { coversConversation } from '../../src/contracts/conversation/id.js';
import { ModelRules, modelFor } from '../../src/contracts/policy/model-rules.js';
import { ModelBrokerError } from '../../src/worker/broker/errors.js';
import {
  afterFailure,
  bothFailedMessage,
  fallbackFor,
  fallbackNote,
  PASS_OVER_MS,
  unavailableReason,
} from '../../src/worker/broker/model-choice.js';
import { RoutedBroker } from '../../src/worker/broker/routed-broker.js';

/** SANDBOT_MODEL_RULES, the model a conversation gets, and when the fallback answers (pure). */

const DEFAULT = 'qwen2.5:7b';

describe('model rules', () => {
  const rules = ModelRules.parse(
    'slack:T1=llama3.2:3b; slack:T1:C2=qwen2.5:14b;discord:111:222=hf.co/org/repo:Q4_K_M;web:team-*=gpt-4o-mini',
  );

  it('picks the model per Slack, Discord and web conversation, the longest covering prefix winning', () => {
    expect(modelFor(rules, DEFAULT, 'slack:T1:C2:1700000000.000100')).toBe('qwen2.5:14b');
    expect(modelFor(rules, DEFAULT, 'slack:T1:C3:1700000000.000100')).toBe('llama3.2:3b');
    expect(modelFor(rules, DEFAULT, 'slack:T2:C2:1700000000.000100')).toBe(DEFAULT);
    expect(modelFor(rules, DEFAULT, 'discord:111:222:333')).toBe('hf.co/org/repo:Q4_K_M');
    expect(modelFor(rules, DEFAULT, 'discord:111:2223:333')).toBe(DEFAULT);
    expect(modelFor(rules, DEFAULT, 'web:team-a')).toBe('gpt-4o-mini');
    expect(modelFor(rules, DEFAULT, 'web:alice')).toBe(DEFAULT);
  });

  it('matches whole id segments: a rule for C2 never reaches C23', () => {
    expect(modelFor(rules, DEFAULT, 'slack:T1:C23:1.2')).toBe('llama3.2:3b');
    expect(modelFor(rules, DEFAULT, 'slack:T12:C2:1.2')).toBe(DEFAULT);
  });

  it('is unset or empty: the default everywhere', () => {
    expect(ModelRules.parse(undefined)).toEqual([]);
    expect(ModelRules.parse(' ; ')).toEqual([]);
    expect(modelFor([], DEFAULT, 'web:x')).toBe(DEFAULT);
  });

  it('refuses bad rules in words that name the rule', () => {
    const cases: [string, RegExp][] = [
      ['slack:T1', /"slack:T1": a rule is <conversation-prefix>=<model>/],
      ['=qwen', /"=qwen": a rule is <conversation-prefix>=<model>/],
      ['irc:x=qwen', /"irc:x=qwen": a rule is/],
      ['slack:T1=a,b', /"slack:T1=a,b": one model per rule/],
      ['slack:T1=', /"slack:T1=": one model per rule/],
      ['slack:T1=-bad', /"slack:T1=-bad": a model name/],
      ['slack:T1=a;slack:T1=b', /"slack:T1" has more than one model rule/],
    ];
    for (const [text, message] of cases) {
      const parsed = ModelRules.safeParse(text);
      expect(parsed.success, text).toBe(false);
      expect(parsed.error?.issues[0]?.message, text).toMatch(message);
    }
  });

  it('is read from the config, with the fallback and the cap', () => {
    const config = ConfigSchema.parse({
      SANDBOT_MODEL_RULES: 'web:=llama3.2:1b',
      SANDBOT_MODEL_FALLBACK: 'qwen2.5:3b',
    });
    expect(config.SANDBOT_MODEL_RULES).toEqual([{ prefix: 'web:', model: 'llama3.2:1b' }]);
    expect(config.SANDBOT_MODEL_FALLBACK).toBe('qwen2.5:3b');
    expect(config.SANDBOT_MODEL_CONCURRENCY).toBe(4);
    expect(ConfigSchema.parse({ SANDBOT_MODEL_FALLBACK: '' }).SANDBOT_MODEL_FALLBACK).toBeUndefined();
    expect(ConfigSchema.safeParse({ SANDBOT_MODEL_CONCURRENCY: '0' }).success).toBe(false);
    expect(ConfigSchema.safeParse({ SANDBOT_MODEL_FALLBACK: 'a b' }).success).toBe(false);
  });

  const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,8}$/);
  const slackId = fc.tuple(segment, segment, segment).map(([t, c, ts]) => `slack:${t}:${c}:${ts}`);

  it('gives a conversation the model of a covering rule, and never one whose prefix does not cover it', () => {
    fc.assert(
      fc.property(
        slackId,
        fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), segment), { maxLength: 4 }),
        (conversation, cuts) => {
          const parts = conversation.split(':');
          // Prefixes of the id itself (covering) and with a changed segment (not covering).
          const rules = cuts.map(([n, other], i) => ({
            prefix: i % 2 ? parts.slice(0, n + 1).join(':') : [...parts.slice(0, n), `${other}x`].join(':'),
            model: `m${i}`,
          }));
          const model = modelFor(rules, DEFAULT, conversation);
          const covering = rules.filter((r) => coversConversation(r.prefix, conversation));
          if (covering.length === 0) return model === DEFAULT;
          const longest = Math.max(...covering.map((r) => r.prefix.length));
          return covering.some((r) => r.model === model && r.prefix.length === longest);
        },
      ),
    );
  });
});

describe('fallback decisions', () => {
  it('falls back at once when the chosen model is missing or too slow', () => {
    expect(afterFailure('model_missing', 0, true)).toBe('fallback');
    expect(afterFailure('timeout', 0, true)).toBe('fallback');
  });

  it('tries again once after any other failure, then falls back', () => {
    for (const kind of ['server_error', 'bad_response', 'unreachable', 'rate_limited']) {
      expect(afterFailure(kind, 0, true), kind).toBe('retry');
      expect(afterFailure(kind, 1, true), kind).toBe('fallback');
    }
  });

  it('never falls back for a cancelled request, and changes nothing without a fallback', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.nat(5),
        (kind, failures) => afterFailure(kind, failures, false) === 'give_up',
      ),
    );
    expect(afterFailure('cancelled', 0, true)).toBe('give_up');
  });

  it('has no fallback for a request that asks for the fallback itself', () => {
    expect(fallbackFor('a', 'b')).toBe('b');
    expect(fallbackFor('a', 'a')).toBeUndefined();
    expect(fallbackFor('a', undefined)).toBeUndefined();
  });

  it('says which model answered and why, and names both when neither could', () => {
    expect(fallbackNote('small', 'big', unavailableReason('model_missing', 1))).toBe(
      '(Answered by small: big was unavailable, it is not installed on the model server.)',
    );
    expect(unavailableReason('server_error', 2)).toBe('it failed twice in a row');
    expect(unavailableReason('timeout', 1)).toBe('it did not answer in time');
    expect(
      bothFailedMessage(
        { model: 'big', error: 'model big is not pulled' },
        { model: 'small', error: 'boom' },
      ),
    ).toBe('Neither model could answer. big: model big is not pulled. The fallback small: boom.');
  });
});

describe('the routed broker (a scripted backend)', () => {
  type Request = { model: string; signal?: AbortSignal };
  const failing = (kind: ConstructorParameters<typeof ModelBrokerError>[0]) =>
    new ModelBrokerError(kind, `${kind} happened`);

  /** A backend answering each model from its own queue of outcomes (an Error is thrown). */
  function backend(outcomes: Record<string, (string | Error)[]>) {
    const asked: string[] = [];
    return {
      asked,
      chat: async (request: Request) => {
        asked.push(request.model);
        const next = outcomes[request.model]?.shift() ?? new Error(`nothing scripted for ${request.model}`);
        if (next instanceof Error) throw next;
        return { text: next };
      },
    };
  }

  it('answers with the chosen model when it works, whatever the fallback', async () => {
    const b = backend({ big: ['hi'] });
    const result = await new RoutedBroker(b, { fallback: 'small' }).chat({ model: 'big' });
    expect(result).toEqual({ text: 'hi', model: 'big' });
    expect(b.asked).toEqual(['big']);
  });

  it('asks the fallback at once for a missing model, after two failures otherwise', async () => {
    const missing = backend({ big: [failing('model_missing')], small: ['from small'] });
    const one = await new RoutedBroker(missing, { fallback: 'small' }).chat({ model: 'big' });
    expect(one).toMatchObject({ text: 'from small', model: 'small', fallback: { chosen: 'big' } });
    expect(missing.asked).toEqual(['big', 'small']);

    const flaky = backend({ big: [failing('server_error'), failing('bad_response')], small: ['ok'] });
    const two = await new RoutedBroker(flaky, { fallback: 'small' }).chat({ model: 'big' });
    expect(two.fallback?.reason).toBe('it failed twice in a row');
    expect(flaky.asked).toEqual(['big', 'big', 'small']);

    const once = backend({ big: [failing('server_error'), 'second time lucky'] });
    expect(await new RoutedBroker(once, { fallback: 'small' }).chat({ model: 'big' })).toEqual({
      text: 'second time lucky',
      model: 'big',
    });
  });

  it('without a fallback, the first error is the answer (no retry)', async () => {
    const b = backend({ big: [failing('server_error'), 'not asked'] });
    await expect(new RoutedBroker(b).chat({ model: 'big' })).rejects.toThrow('server_error happened');
    expect(b.asked).toEqual(['big']);
  });

  it('names both models when the fallback fails too', async () => {
    const b = backend({ big: [failing('model_missing')], small: [failing('timeout')] });
    const error = await new RoutedBroker(b, { fallback: 'small' }).chat({ model: 'big' }).catch((e) => e);
    expect(error).toBeInstanceOf(ModelBrokerError);
    expect(error.kind).toBe('timeout');
    expect(error.message).toBe(
      'Neither model could answer. big: model_missing happened. The fallback small: timeout happened.',
    );
  });

  it('does not fall back from a cancelled request', async () => {
    const b = backend({ big: [failing('cancelled')], small: ['not asked'] });
    await expect(new RoutedBroker(b, { fallback: 'small' }).chat({ model: 'big' })).rejects.toThrow(
      'cancelled happened',
    );
    expect(b.asked).toEqual(['big']);
  });

  it('passes over a chosen model that timed out for a while, then asks it again', async () => {
    let now = 1_000_000;
    const b = backend({ big: [failing('timeout'), 'big is back'], small: ['one', 'two'] });
    const broker = new RoutedBroker(b, { fallback: 'small', now: () => now });
    expect(await broker.chat({ model: 'big' })).toMatchObject({ text: 'one', fallback: { chosen: 'big' } });
    // Straight to the fallback: the chosen model is not made to time out again on every request.
    const second = await broker.chat({ model: 'big' });
    expect(second).toMatchObject({ text: 'two', model: 'small' });
    expect(second.fallback?.reason).toBe('it did not answer in time');
    expect(b.asked).toEqual(['big', 'small', 'small']);
    now += PASS_OVER_MS;
    expect(await broker.chat({ model: 'big' })).toEqual({ text: 'big is back', model: 'big' });
  });

  it('asks a missing model again on the next request (it may have been pulled meanwhile)', async () => {
    const b = backend({ big: [failing('model_missing'), 'pulled now'], small: ['one'] });
    const broker = new RoutedBroker(b, { fallback: 'small' });
    await broker.chat({ model: 'big' });
    expect(await broker.chat({ model: 'big' })).toEqual({ text: 'pulled now', model: 'big' });
  });

  it('holds a slot of the gate for the whole request, fallback included, and gives it back', async () => {
    const events: string[] = [];
    const gate = {
      acquire: async () => {
        events.push('acquire');
        return { release: async () => void events.push('release') };
      },
    };
    const b = backend({ big: [failing('model_missing')], small: ['ok'] });
    const chat = b.chat;
    b.chat = (request) => {
      events.push(`chat ${request.model}`);
      return chat(request);
    };
    await new RoutedBroker(b, { fallback: 'small', gate }).chat({ model: 'big' });
    expect(events).toEqual(['acquire', 'chat big', 'chat small', 'release']);
  });
});
