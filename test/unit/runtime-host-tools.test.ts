import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Runtime } from '../../sandbox/runtime/runtime.js';
import type { RuntimeToWorker, WorkerToRuntime } from '../../src/contracts/protocol/agent.js';

/**
 * Host tools in the agent runtime (in-process, real tools on a temp workspace): a `delegate` call goes
 * to the worker as a host_tool_request, every one of an answer at once, and the results come back to
 * the model in the order of the calls.
 */

let root: string;
let out: RuntimeToWorker[];
let runtime: Runtime;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'sandbot-host-tools-'));
  mkdirSync(path.join(root, 'workspace'));
  mkdirSync(path.join(root, 'session'));
  out = [];
  runtime = new Runtime({
    workspace: path.join(root, 'workspace'),
    session: path.join(root, 'session'),
    maxLineBytes: 65_536,
    write: (message) => out.push(message),
  });
});
afterEach(async () => {
  await runtime.shutdown();
  rmSync(root, { recursive: true, force: true });
});

const send = (message: WorkerToRuntime) => runtime.receive({ ok: true, value: message });

async function next<T extends RuntimeToWorker['type']>(
  type: T,
  count = 1,
): Promise<Extract<RuntimeToWorker, { type: T }>[]> {
  for (let i = 0; i < 200; i++) {
    const found = out.filter((m): m is Extract<RuntimeToWorker, { type: T }> => m.type === type);
    if (found.length >= count) return found;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${count} × ${type}: ${JSON.stringify(out)}`);
}

const limits = { toolTimeoutMs: 10_000, toolOutputBytes: 4096 };
const delegate = (task: string) => ({ function: { name: 'delegate', arguments: { task } } });

describe('host tools in the runtime', () => {
  it('asks the worker for every host call of an answer at once and returns results in call order', async () => {
    send({ type: 'turn', turnId: 't1', messages: [{ user: 'alice', text: 'split it' }], limits });
    const [first] = await next('model_request');
    send({
      type: 'model_response',
      turnId: 't1',
      requestId: first?.requestId ?? '',
      message: {
        role: 'assistant',
        content: '',
        tool_calls: [
          delegate('part A'),
          { function: { name: 'bash', arguments: { command: 'echo own' } } },
          delegate('part B'),
        ],
      },
    });
    // Both requests are out before either is answered: the sub-agents can work in parallel.
    const requests = await next('host_tool_request', 2);
    expect(requests.map((r) => [r.name, r.args])).toEqual([
      ['delegate', { task: 'part A' }],
      ['delegate', { task: 'part B' }],
    ]);
    const [a, b] = requests;
    send({
      type: 'host_tool_result',
      turnId: 't1',
      requestId: b?.requestId ?? '',
      ok: true,
      output: 'B done',
    });
    send({
      type: 'host_tool_result',
      turnId: 't1',
      requestId: a?.requestId ?? '',
      ok: false,
      output: 'A failed',
    });
    const [, second] = await next('model_request', 2);
    expect(second?.messages.slice(-3)).toEqual([
      { role: 'tool', tool_name: 'delegate', content: 'A failed' },
      { role: 'tool', tool_name: 'bash', content: 'exit code 0\nown\n' },
      { role: 'tool', tool_name: 'delegate', content: 'B done' },
    ]);
    const finished = await next('tool_finished', 3);
    expect(finished.map((f) => [f.name, f.ok])).toEqual([
      ['delegate', false],
      ['bash', true],
      ['delegate', true],
    ]);
  });

  it('ignores a result nobody asked for, and a cancel ends the wait', async () => {
    send({ type: 'host_tool_result', turnId: 't9', requestId: 'nope', ok: true, output: 'forged' });
    const [error] = await next('error');
    expect(error?.message).toMatch(/host_tool_result for request nope of turn t9 ignored/);
    send({ type: 'turn', turnId: 't2', messages: [{ user: 'alice', text: 'go' }], limits });
    const [request] = await next('model_request');
    send({
      type: 'model_response',
      turnId: 't2',
      requestId: request?.requestId ?? '',
      message: { role: 'assistant', content: '', tool_calls: [delegate('long job')] },
    });
    await next('host_tool_request');
    send({ type: 'cancel', turnId: 't2' });
    await next('turn_done');
    await runtime.shutdown();
    expect(out.filter((m) => m.type === 'model_request')).toHaveLength(1);
  });
});
