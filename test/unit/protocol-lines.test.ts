import { describe, expect, it } from 'vitest';
import { RuntimeToWorker, WorkerToRuntime } from '../../src/contracts/protocol/agent.js';
import { encodeLine, LineDecoder } from '../../src/contracts/protocol/lines.js';

describe('LineDecoder', () => {
  it('parses lines split across chunks', () => {
    const decoder = new LineDecoder(RuntimeToWorker, 1024);
    const line = encodeLine({ type: 'ready', version: '1' });
    expect(decoder.push(line.slice(0, 5))).toEqual([]);
    expect(decoder.push(line.slice(5) + encodeLine({ type: 'turn_done', turnId: 't' }))).toEqual([
      { ok: true, value: { type: 'ready', version: '1' }, bytes: line.length - 1 },
      { ok: true, value: { type: 'turn_done', turnId: 't' }, bytes: 33 },
    ]);
  });

  it('names what is wrong with malformed and mismatched lines', () => {
    const decoder = new LineDecoder(RuntimeToWorker, 1024);
    const [notJson, wrongShape, unknownKind] = decoder.push(
      '{oops\n{"type":"reply","turnId":5,"text":"x"}\n{"type":"nope"}\n',
    );
    expect(notJson).toMatchObject({ ok: false, error: 'protocol line is not JSON' });
    expect(wrongShape).toMatchObject({ ok: false, error: expect.stringContaining('turnId') });
    expect(unknownKind).toMatchObject({ ok: false });
  });

  it('refuses an oversized line without buffering it and recovers on the next line', () => {
    const decoder = new LineDecoder(RuntimeToWorker, 64);
    const results = [
      ...decoder.push('x'.repeat(50)),
      ...decoder.push('y'.repeat(50)),
      ...decoder.push('z'.repeat(500)),
    ];
    expect(results).toEqual([{ ok: false, error: 'protocol line over 64 bytes refused', bytes: 65 }]);
    expect(decoder.push(`tail\n${encodeLine({ type: 'ready', version: '2' })}`)).toEqual([
      { ok: true, value: { type: 'ready', version: '2' }, bytes: 30 },
    ]);
    const single = new LineDecoder(RuntimeToWorker, 64);
    expect(single.push(`${'a'.repeat(100)}\n`)).toEqual([
      { ok: false, error: 'protocol line over 64 bytes refused', bytes: 65 },
    ]);
  });

  it('keeps worker and runtime message kinds apart', () => {
    const decoder = new LineDecoder(WorkerToRuntime, 1024);
    expect(decoder.push(encodeLine({ type: 'reply', turnId: 't', text: 'x' }))[0]?.ok).toBe(false);
    expect(decoder.push(encodeLine({ type: 'hello' }))[0]?.ok).toBe(true);
  });
});
