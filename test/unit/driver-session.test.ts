import { Duplex } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';
import { fakeAttachedSession } from '../helpers/attached-session.js';

// The engine's attach stream: 8-byte header (stream type, 3 zero bytes, big-endian length) + payload.
function frame(stream: 1 | 2, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header.writeUInt8(stream, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

const conversation = ConversationId.parse('web:session-test');

/** The attach socket: what the engine sends is pushed in, what the session writes is recorded. */
function attached(maxLineBytes = 256, logger?: pino.Logger) {
  const { socket, session, written } = fakeAttachedSession(conversation, { maxLineBytes, logger });
  const results: LineResult<RuntimeToWorker>[] = [];
  return { socket, session, results, written };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('AttachedSession', () => {
  it('parses stdout lines, split anywhere (even inside a UTF-8 character), and ignores stderr', async () => {
    const { socket, session, results } = attached();
    session.onMessage((r) => results.push(r));
    const line = Buffer.from('{"type":"progress","turnId":"t1","text":"héllo"}\n');
    const cut = line.indexOf('é') + 1; // between the two bytes of "é"
    socket.push(frame(2, '{"type":"ready","version":"from-stderr"}\n'));
    socket.push(Buffer.concat([frame(1, line.subarray(0, cut)), frame(1, line.subarray(cut))]));
    await tick();
    expect(results).toEqual([
      { ok: true, value: { type: 'progress', turnId: 't1', text: 'héllo' }, bytes: line.length - 1 },
    ]);
  });

  it('keeps what arrives before the first listener and delivers it in order', async () => {
    const { socket, session, results } = attached();
    socket.push(frame(1, '{"type":"progress","turnId":"t","text":"1"}\n{"type":"turn_done","turnId":"t"}\n'));
    await tick();
    session.onMessage((r) => results.push(r));
    expect(results).toEqual([]); // delivered after registration returns
    await tick();
    expect(results.map((r) => r.ok && r.value.type)).toEqual(['progress', 'turn_done']);
  });

  it('turns an over-long line and a wrong shape into error results, then carries on', async () => {
    const { socket, session, results } = attached(64);
    session.onMessage((r) => results.push(r));
    socket.push(frame(1, `${'x'.repeat(200)}\n{"type":"nope"}\n{"type":"turn_done","turnId":"2"}\n`));
    await tick();
    expect(results[0]).toMatchObject({ ok: false, error: expect.stringMatching(/over 64 bytes/) });
    expect(results[1]).toMatchObject({ ok: false, error: expect.stringMatching(/does not match/) });
    expect(results[2]).toMatchObject({ ok: true, value: { type: 'turn_done', turnId: '2' } });
  });

  it('writes one JSON line per message and reports the end of the stream once', async () => {
    const { socket, session, written } = attached();
    session.send({ type: 'hello' });
    await tick();
    expect(written).toEqual(['{"type":"hello"}\n']);
    const reasons: string[] = [];
    session.onClose((r) => reasons.push(r));
    socket.push(null);
    await tick();
    await tick();
    expect(reasons).toHaveLength(1);
    expect(() => session.send({ type: 'hello' })).toThrow(/detached.*open it again/);
    const late: string[] = [];
    session.onClose((r) => late.push(r));
    await tick();
    expect(late).toEqual(reasons);
  });

  it('logs stderr for humans, capped, and never reads it as protocol', async () => {
    const logged: { stderr?: string; msg: string }[] = [];
    const sink = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        logged.push(JSON.parse(chunk.toString()));
        done();
      },
    });
    const { socket, session, results } = attached(256, pino({ level: 'info' }, sink));
    session.onMessage((r) => results.push(r));
    const line = `${'{"type":"ready","version":"x"}'.padEnd(1000, ' ')}\n`;
    for (let i = 0; i < 200; i++) socket.push(frame(2, line)); // 200 kB of stderr
    await tick();
    await tick();
    expect(results).toEqual([]);
    const text = logged.map((l) => l.stderr ?? '').join('');
    expect(text.length).toBeGreaterThan(0);
    expect(text.length).toBeLessThanOrEqual(64 * 1024 + 2000);
    expect(logged.at(-1)?.msg).toMatch(/further output not logged/);
  });
});
