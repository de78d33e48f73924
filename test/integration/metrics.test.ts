import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeChatRequest } from '../../testkit/fakes/fake-ollama.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/** Prometheus metrics at /metrics, scraped before and after real turns (as `sandbot up` serves them). */

const MODEL = 'qwen2.5:7b';
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-metrics-'));
const config = testConfig(testInstance('metrics'), { SANDBOT_AUDIT_DIR: dir, SANDBOT_MODEL: MODEL });
let stack: ScriptedStack;

/** A sample's value from Prometheus text, 0 when absent; labels must all match. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(match[3]);
  }
  return total;
}

const scrape = async () => {
  const response = await fetch(`${stack.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
};

beforeAll(async () => {
  stack = await startScriptedStack(config, (request: FakeChatRequest) =>
    request.messages.at(-1)?.role === 'tool'
      ? { reply: 'listed' }
      : { toolCalls: [{ name: 'bash', arguments: { command: 'ls /workspace' } }] },
  );
});

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('GET /metrics', () => {
  it('moves as turns run', async () => {
    const before = await scrape();
    expect(before).toContain('# TYPE sandbot_turn_duration_seconds histogram');
    expect(before).toContain('sandbot_process_cpu_user_seconds_total');
    const sse = await openSse(`${stack.url}/api/conversations/metered/events`);
    try {
      await postMessage(stack.url, 'metered', 'list my files');
      await sse.waitFor((e) => e.type === 'reply');
    } finally {
      sse.close();
    }
    // The turn ends (and is counted) just after its reply goes out.
    const turns = (text: string) => sample(text, 'sandbot_turn_duration_seconds_count');
    let after = await scrape();
    for (let i = 0; i < 100 && turns(after) === turns(before); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await scrape();
    }
    const moved = (name: string, labels: Record<string, string> = {}) =>
      sample(after, name, labels) - sample(before, name, labels);

    expect(moved('sandbot_messages_in_total', { platform: 'web', kind: 'message' })).toBe(1);
    expect(moved('sandbot_messages_out_total', { platform: 'web', type: 'reply' })).toBe(1);
    expect(moved('sandbot_messages_out_total', { platform: 'web', type: 'progress' })).toBeGreaterThanOrEqual(
      1,
    );
    expect(moved('sandbot_turn_duration_seconds_count', { mode: 'chat', outcome: 'replied' })).toBe(1);
    expect(moved('sandbot_queue_wait_seconds_count')).toBe(1);
    expect(moved('sandbot_model_request_seconds_count', { model: MODEL, outcome: 'ok' })).toBe(2);
    expect(moved('sandbot_model_tokens_total', { model: MODEL, direction: 'prompt' })).toBeGreaterThan(0);
    expect(moved('sandbot_model_tokens_total', { model: MODEL, direction: 'completion' })).toBeGreaterThan(0);
    expect(moved('sandbot_tool_calls_total', { tool: 'bash', ok: 'true' })).toBe(1);
    expect(moved('sandbot_sandbox_start_seconds_count', { start: 'cold' })).toBe(1);
    expect(sample(after, 'sandbot_live_sandboxes', { instance: config.SANDBOT_INSTANCE })).toBe(1);
    expect(after).toMatch(
      new RegExp(`^sandbot_queue_depth\\{instance="${config.SANDBOT_INSTANCE}"\\} 0$`, 'm'),
    );
    expect(after).toContain('# TYPE sandbot_kills_total counter');
    expect(after).toContain('# TYPE sandbot_refusals_total counter');
  });
});
