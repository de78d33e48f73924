import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import { conversation, type Redteam, startRedteam } from './harness.js';

/**
 * Red team, what the agent leaves in /workspace against the worker's reads of it (the audit's
 * snapshot, the outbox, delegation copies): sparse files cost no disk, but the engine's archive streams
 * their apparent size (40 × 4 GiB once held a reply back ≈35 min). The reply must come at once, the
 * next message be answered, the read be cut and recorded as cut, and neither `docker rm -f` nor the
 * worker's stop wait on a read. Default settings (caps on: sparse files fit, they use no blocks).
 */

const run = promisify(execFile);
const diskDir = join(tmpdir(), `sandbot-rt-reads-${process.pid}`);
/** Far under the turn timeout (600 s): a turn of a few commands takes ≈1–3 s here. */
const PROMPT_MS = 20_000;
const SPARSE = 'truncate -s 4G /workspace/sparse{1..40} && du -sh /workspace | cut -f1 && echo sparse-made';
let rt: Redteam;

beforeAll(async () => {
  rt = await startRedteam('reads', { settings: { SANDBOX_DISK_DIR: diskDir } });
});

afterAll(async () => {
  await rt?.stop();
  rmSync(diskDir, { recursive: true, force: true });
});

const isCut = (read: string) => (e: AuditEvent) =>
  e.kind === 'limit.hit' && e.data.limit === 'workspace_read' && e.data.read === read;

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const began = performance.now();
  const value = await work();
  return { value, ms: Math.round(performance.now() - began) };
}

describe('red team: reads of the workspace (default settings)', () => {
  it('40 sparse 4 GiB files: the reply comes at once, the next message is answered, the snapshot is cut', async () => {
    const session = 'reads-sparse';
    const made = await timed(() => rt.ask(session, SPARSE, PROMPT_MS));
    expect(made.value.text).toContain('sparse-made');
    expect(made.ms).toBeLessThan(PROMPT_MS);
    const next = await timed(() =>
      rt.ask(session, 'ls /workspace | grep -c sparse; echo next-answered', PROMPT_MS),
    );
    expect(next.value.text).toContain('next-answered');
    expect(next.value.text).toContain('40');
    expect(next.ms).toBeLessThan(PROMPT_MS);
    const events = await rt.auditUntil(session, isCut('snapshot'), 'a cut workspace snapshot');
    const cut = events.find(isCut('snapshot'));
    expect(cut?.data).toMatchObject({
      reason: 'bytes',
      at: expect.stringMatching(/^\/workspace\/sparse\d+$/),
    });
    await rt.row(
      '40 sparse 4 GiB files in /workspace (160 GiB apparent, no blocks)',
      `reply in ${(made.ms / 1000).toFixed(1)} s, next message answered in ${(next.ms / 1000).toFixed(1)} s; the snapshot lists the first sparse file by its header and is cut there (${cut?.data.bytes} bytes streamed)`,
      session,
    );
  }, 120_000);

  it('a sparse 4 GiB file in the outbox: not attached, not streamed, the reply comes at once', async () => {
    const session = 'reads-outbox';
    const asked = await timed(() =>
      rt.ask(
        session,
        'mkdir -p /workspace/outbox && truncate -s 4G /workspace/outbox/huge.bin && echo outbox-made',
        PROMPT_MS,
      ),
    );
    expect(asked.value.text).toContain('outbox-made');
    expect(asked.value.text).toContain('huge.bin (over the size limit)');
    expect(asked.ms).toBeLessThan(PROMPT_MS);
    const events = await rt.auditUntil(session, isCut('outbox'), 'a cut outbox read');
    expect(events.find(isCut('outbox'))?.data).toMatchObject({ reason: 'bytes', at: 'huge.bin' });
    await rt.row(
      'a sparse 4 GiB file put in /workspace/outbox for the reply',
      `reply in ${(asked.ms / 1000).toFixed(1)} s, saying huge.bin was not attached (over the size limit); the outbox read cut at its header`,
      session,
    );
  }, 120_000);

  it('docker rm -f right after such a turn, then the worker’s stop right after another, return at once', async () => {
    const removed = 'reads-rm';
    expect((await rt.ask(removed, SPARSE, PROMPT_MS)).text).toContain('sparse-made');
    const name = sandboxNames(rt.instance, conversation(removed)).container;
    expect((await rt.container(removed).inspect()).State.Running).toBe(true);
    const rm = await timed(() => run('docker', ['rm', '-f', name]));
    expect(rm.ms).toBeLessThan(10_000);
    await expect(rt.container(removed).inspect()).rejects.toMatchObject({ statusCode: 404 });
    // The conversation goes on in a new sandbox, with its files (its volumes stay).
    const back = await rt.ask(removed, 'ls /workspace | grep -c sparse; echo back-again', PROMPT_MS);
    expect(back.text).toContain('back-again');
    expect(back.text).toContain('40');
    const stopped = 'reads-stop';
    expect((await rt.ask(stopped, SPARSE, PROMPT_MS)).text).toContain('sparse-made');
    // What the audit holds is read before the stop (the worker's audit log goes with it).
    const recorded = `${removed}: ${await rt.evidence(removed)}. ${stopped}: ${await rt.evidence(stopped)}`;
    const stop = await timed(() => rt.stack.stop());
    // Stopped here: the harness's own stop must not stop it twice.
    Object.assign(rt.stack, { stop: async () => undefined });
    expect(stop.ms).toBeLessThan(PROMPT_MS);
    rt.rows.push({
      attack: 'docker rm -f, and the stack’s stop, right after a turn that made 40 sparse 4 GiB files',
      outcome: `docker rm -f returned in ${rm.ms} ms (the conversation went on in a new sandbox, its files kept); the worker and gateway stopped in ${stop.ms} ms`,
      recorded,
    });
  }, 120_000);
});
