import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KeptSessions } from '../../sandbox/host/driver/kept-sessions.js';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { type ProcessTable, reapStrays } from '../../sandbox/runtime/reap.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import { EGRESS_CHUNK_BYTES, type EgressStreamFrame } from '../../src/contracts/protocol/egress.js';
import { EgressStreams } from '../../src/contracts/protocol/egress-streams.js';
import { ATOMIC_WRITE_BYTES, encodeFrames, FrameJoiner } from '../../src/contracts/protocol/frames.js';
import { LineDecoder, type LineResult } from '../../src/contracts/protocol/lines.js';
import { fakeAttachedSession } from '../helpers/attached-session.js';

const KEY = 'ab'.repeat(16);
const tick = () => new Promise((r) => setImmediate(r));
/** A model request: the runtime's longest lines. */
const progress = (text: string) => ({
  type: 'model_request',
  turnId: 't1',
  requestId: 'r1',
  messages: [{ role: 'user', content: text }],
});

function decoderWith(key: string, maxLineBytes = 1 << 20) {
  const joiner = new FrameJoiner(key, maxLineBytes);
  return new LineDecoder(RuntimeToWorker, maxLineBytes, (line) => joiner.accept(line));
}

describe('framed runtime lines', () => {
  it('writes a short line as one frame and a long one as parts that fit one atomic pipe write', () => {
    expect(encodeFrames({ type: 'turn_done', turnId: 't' }, KEY)).toEqual([
      Buffer.from('\n{"type":"turn_done","turnId":"t"}\n'),
    ]);
    const frames = encodeFrames(progress('é'.repeat(20_000)), KEY);
    expect(frames.length).toBeGreaterThan(9);
    for (const frame of frames) {
      expect(frame.length).toBeLessThanOrEqual(ATOMIC_WRITE_BYTES);
      // Each part is whole UTF-8: another writer's bytes between parts cannot garble a character.
      expect(Buffer.from(frame.toString('utf8')).equals(frame)).toBe(true);
    }
    // Without a key (nobody said hello) a long line goes whole, as before.
    expect(encodeFrames(progress('x'.repeat(10_000)), '')).toHaveLength(1);
  });

  it('keeps a long line whole whatever other writers put between its frames', () => {
    const line = progress('long '.repeat(3000));
    const junk = [
      'half a line without its end',
      `\x1e${'cd'.repeat(16)}.{"type":"turn_done","turnId":"t1"}\n`, // a part with another key
      `\x1e${KEY}`, // the key's place, but cut off by the next frame's newline
      '{"type":"turn_done","turnId":"forged"}\n',
      'x'.repeat(5000),
    ];
    const stream = encodeFrames(line, KEY).flatMap((frame, i) => [
      junk[i % junk.length] ?? '',
      frame.toString(),
    ]);
    const results = decoderWith(KEY).push(stream.join(''));
    const whole = results.filter((r) => r.ok && r.value.type === 'model_request');
    expect(whole).toHaveLength(1);
    expect(whole[0]).toMatchObject({ ok: true, value: line });
    // Everything else is a line of its own, for the worker to count.
    expect(results.length).toBeGreaterThan(1);
  });

  it('refuses a joined line over the cap once and goes on with the next', () => {
    const decoder = decoderWith(KEY, 10_000);
    const big = encodeFrames(progress('y'.repeat(20_000)), KEY).join('');
    const small = encodeFrames(progress('ok'), KEY).join('');
    const results = decoder.push(big + small);
    expect(results.filter((r) => !r.ok)).toHaveLength(1);
    expect(results.at(-1)).toMatchObject({ ok: true, value: progress('ok') });
  });
});

/** A process table where every running "chain" process forks its next generation and exits per look. */
function forkingTable(uid: number) {
  const procs = new Map<number, { uid: number; stopped: boolean; chain: boolean }>();
  let next = 100;
  const add = (owner: number, chain: boolean) => procs.set(next++, { uid: owner, stopped: false, chain });
  const table: ProcessTable = {
    pids() {
      for (const [pid, p] of [...procs]) {
        if (!p.chain || p.stopped) continue;
        procs.delete(pid);
        add(p.uid, true);
      }
      return [1, ...procs.keys()];
    },
    ownerOf: (pid) => (pid === 1 ? uid : procs.get(pid)?.uid),
    signal(pid, signal) {
      const p = procs.get(pid);
      if (!p) return false;
      if (signal === 'SIGSTOP') p.stopped = true;
      else procs.delete(pid);
      return true;
    },
  };
  return { procs, add, table };
}

describe('reapStrays', () => {
  it('leaves none of the uid but itself, however fast chains fork', () => {
    const { procs, add, table } = forkingTable(1000);
    for (let i = 0; i < 150; i++) add(1000, false); // decoys
    for (let i = 0; i < 4; i++) add(1000, true); // chains
    add(0, false); // another user's: not ours to kill
    add(1000, false); // the runtime
    const self = 100 + 155;
    add(1000, false); // the shell waiting for the next call: the agent could have fed it a command
    const result = reapStrays(self, 1000, table);
    expect(result.left).toBe(0);
    expect([...procs.keys()].sort()).toEqual([100 + 154, self]);
  });

  it('takes every uid of the turn (the agent’s and the skills’), and no other', () => {
    const { procs, add, table } = forkingTable(0);
    add(1000, true); // the agent's chain
    add(2001, true); // a skill's chain, under its own uid
    add(2002, false);
    add(0, false); // the runtime's uid: not the turn's
    add(3000, false); // no uid of the turn's
    const result = reapStrays(1, new Set([1000, 2001, 2002]), table);
    expect(result.left).toBe(0);
    expect([...procs.values()].map((p) => p.uid).sort()).toEqual([0, 3000]);
  });
});

const conversation = ConversationId.parse('web:outlive-test');

function attached(bufferBytes?: number) {
  const { session, stdout, written } = fakeAttachedSession(conversation, {
    maxLineBytes: 1 << 20,
    bufferBytes,
  });
  return { session, stdout, written };
}

describe('AttachedSession', () => {
  it('gives the runtime its frame key, keeps its own ready lines, and passes on any more', async () => {
    const { session, stdout, written } = attached();
    const results: LineResult<RuntimeToWorker>[] = [];
    session.onMessage((r) => results.push(r));
    session.expectStartupReady();
    session.greet();
    expect(JSON.parse(written[0] ?? '')).toEqual({ type: 'hello', frameKey: session.frameKey });
    for (let i = 0; i < 3; i++) stdout('\n{"type":"ready","version":"v"}\n');
    for (const frame of encodeFrames(progress('z'.repeat(9000)), session.frameKey)) stdout(frame);
    await tick();
    // The start-up ready and the answer to hello are the session's; the third is foreign.
    expect(results.map((r) => r.ok && r.value.type)).toEqual(['ready', 'model_request']);
  });

  it('holds output before the first listener up to its byte budget, then drops and says so', async () => {
    const { session, stdout } = attached(64 * 1024);
    const line = `${JSON.stringify(progress('f'.repeat(9000)))}\n`;
    for (let i = 0; i < 100; i++) stdout(line); // ≈ 900 KB
    await tick();
    const results: LineResult<RuntimeToWorker>[] = [];
    session.onMessage((r) => results.push(r));
    await tick();
    expect(results.length).toBeLessThanOrEqual(8);
    expect(results.at(-1)).toMatchObject({ ok: false, error: expect.stringMatching(/dropped/) });
  });
});

/** A session that stands in for an attached one: lines are pushed in by the test. */
function fakeSession() {
  const listeners = new Set<(r: LineResult<RuntimeToWorker>) => void>();
  const session: SandboxSession = {
    conversation,
    containerId: 'c',
    send: () => undefined,
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose: () => () => undefined,
    close: async () => undefined,
  };
  const push = (value: RuntimeToWorker) => {
    for (const l of [...listeners]) l({ ok: true, value, bytes: JSON.stringify(value).length });
  };
  return { session, push };
}

describe('KeptSessions between turns', () => {
  it('counts what a sandbox writes while no turn holds it, but not the late answer to a cancel', async () => {
    const kept = new KeptSessions(4);
    const { session, push } = fakeSession();
    const first = kept.keep(conversation, session, { network: 'none', skills: '' });
    expect(first.betweenTurns?.()).toEqual({ lines: 0, bytes: 0 });
    first.send({
      type: 'turn',
      turnId: 't1',
      messages: [],
      limits: { toolTimeoutMs: 1, toolOutputBytes: 1 },
    });
    first.send({ type: 'cancel', turnId: 't1' });
    await first.close();
    push({ type: 'turn_done', turnId: 't1' }); // the honest answer to the cancel
    const second = kept.lease(conversation, { network: 'none' });
    expect(second?.betweenTurns?.()).toEqual({ lines: 0, bytes: 0 });
    await second?.close();
    for (let i = 0; i < 3; i++) push({ type: 'turn_done', turnId: 't1' });
    push({ type: 'progress', turnId: 'x', text: 'flood' });
    const third = kept.lease(conversation, { network: 'none' });
    const stray = third?.betweenTurns?.();
    expect(stray?.lines).toBe(4);
    expect(stray?.bytes).toBeGreaterThan(100);
    expect(third?.betweenTurns?.()).toEqual({ lines: 0, bytes: 0 }); // read once
  });
});

describe('egress streams toward a backed-up sandbox', () => {
  it('stop reading the proxy while the sandbox’s stdin is backed up, forged acks or not', async () => {
    const sent: EgressStreamFrame[] = [];
    let blocked = true;
    let drained: (() => void) | undefined;
    const streams = new EgressStreams((frame) => sent.push(frame), {
      blocked: () => blocked,
      onDrain: (listener) => {
        drained = listener;
      },
    });
    const proxy = new PassThrough();
    streams.add(1, proxy);
    for (let i = 0; i < 64; i++) proxy.write(Buffer.alloc(EGRESS_CHUNK_BYTES));
    for (let i = 0; i < 10; i++) await tick();
    const before = sent.length;
    expect(before).toBeLessThanOrEqual(2);
    for (let i = 0; i < 10; i++)
      streams.receive({ type: 'egress_ack', stream: 1, bytes: EGRESS_CHUNK_BYTES });
    for (let i = 0; i < 10; i++) await tick();
    expect(sent.length).toBe(before);
    blocked = false;
    drained?.();
    for (let i = 0; i < 10; i++) await tick();
    expect(sent.length).toBeGreaterThan(before);
  });
});
