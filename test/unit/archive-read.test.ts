import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { type Pack, pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { SandboxReads } from '../../sandbox/host/driver/sandbox-reads.js';
import { readOutboxFiles } from '../../sandbox/host/driver/workspace-files.js';
import { readWorkspaceFiles } from '../../sandbox/host/driver/workspace-read.js';
import { snapshotWorkspace } from '../../sandbox/host/driver/workspace-snapshot.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';

// Reads of a sandbox's files through the archive API stay within their byte and time budget: a sparse
// file's header says its apparent size, and the engine would stream all of it.
const GiB = 1024 ** 3;
const budget = { maxBytes: 1024 * 1024, maxMs: 5000 };

/** A container whose archive is what `build` packs; aborting the request ends the stream. */
function fakeContainer(build: (archive: Pack, path: string) => void) {
  const requests: { path: string; aborted: () => boolean }[] = [];
  const container = {
    getArchive: async (options: { path: string; abortSignal?: AbortSignal }) => {
      const archive = pack();
      const out = new PassThrough();
      requests.push({ path: options.path, aborted: () => options.abortSignal?.aborted === true });
      options.abortSignal?.addEventListener('abort', () => {
        archive.destroy();
        out.destroy(new Error('aborted'));
      });
      archive.pipe(out);
      build(archive, options.path);
      return out;
    },
  };
  return { container: container as unknown as Dockerode.Container, requests };
}

/** An entry whose header says `size` but whose body never ends (as 4 GiB of zeros would seem). */
function endless(archive: Pack, name: string, size: number) {
  archive.entry({ name, size }).write(Buffer.alloc(64 * 1024));
}

describe('bounded archive reads', () => {
  it('a snapshot lists a sparse file by its header and is cut there, not streamed', async () => {
    const { container, requests } = fakeContainer((archive) => {
      archive.entry({ name: 'workspace/', type: 'directory' });
      archive.entry({ name: 'workspace/a.txt' }, 'hello');
      endless(archive, 'workspace/sparse1', 4 * GiB);
    });
    const began = Date.now();
    const snapshot = await snapshotWorkspace(container, undefined, budget);
    expect(Date.now() - began).toBeLessThan(2000);
    expect(snapshot.entries['/workspace/a.txt']?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(snapshot.entries['/workspace/sparse1']).toMatchObject({ size: 4 * GiB });
    expect(snapshot.entries['/workspace/sparse1']?.sha256).toBeUndefined();
    expect(snapshot).toMatchObject({ truncated: true, cut: { reason: 'bytes', at: '/workspace/sparse1' } });
    expect(requests[0]?.aborted()).toBe(true);
  });

  it('cuts a snapshot that streams past its byte budget, and one that takes too long', async () => {
    const many = fakeContainer((archive) => {
      for (let i = 0; i < 40; i++) archive.entry({ name: `workspace/f${i}` }, Buffer.alloc(64 * 1024));
      archive.finalize();
    });
    const cut = await snapshotWorkspace(many.container, undefined, { maxBytes: 512 * 1024, maxMs: 5000 });
    expect(cut.cut).toMatchObject({ reason: 'bytes' });
    expect(Object.keys(cut.entries).length).toBeLessThan(40);
    const stalled = fakeContainer(() => undefined);
    const slow = await snapshotWorkspace(stalled.container, undefined, { maxBytes: GiB, maxMs: 200 });
    expect(slow).toMatchObject({ truncated: true, cut: { reason: 'time' } });
  });

  it('a stop cuts a read in flight and every later one (SandboxReads)', async () => {
    const reads = new SandboxReads({ maxBytes: GiB, maxMs: 60_000 });
    const conversation = webConversationId('bounded');
    const stalled = fakeContainer(() => undefined);
    const pending = reads.run(conversation, (b) => snapshotWorkspace(stalled.container, undefined, b));
    await new Promise((resolve) => setTimeout(resolve, 50));
    reads.abort(conversation);
    expect((await pending).cut).toMatchObject({ reason: 'stopped' });
    reads.close();
    const later = await reads.run(conversation, (b) => snapshotWorkspace(stalled.container, undefined, b));
    expect(later.cut).toMatchObject({ reason: 'stopped', bytes: 0 });
  });

  it('the outbox read skips a huge file without streaming it, and says the read was cut', async () => {
    const { container } = fakeContainer((archive) => {
      archive.entry({ name: 'outbox/', type: 'directory' });
      archive.entry({ name: 'outbox/ok.txt' }, 'fine');
      endless(archive, 'outbox/huge.bin', 4 * GiB);
    });
    const outbox = await readOutboxFiles(container, 0, 10 * 1024 * 1024, 20, budget);
    expect(outbox.files.map((f) => f.name)).toEqual(['ok.txt']);
    expect(outbox.skipped).toEqual([
      'huge.bin (over the size limit)',
      expect.stringMatching(/^any later files \(the read was cut after \d+ MiB\)$/),
    ]);
    expect(outbox.cut).toMatchObject({ reason: 'bytes', at: 'huge.bin' });
  });

  it('a delegation copy ends each read once its first entry is judged (a folder is never streamed)', async () => {
    const { container, requests } = fakeContainer((archive, path) => {
      if (path.endsWith('dir')) {
        archive.entry({ name: 'dir/', type: 'directory' });
        endless(archive, 'dir/sparse', 4 * GiB);
      } else {
        archive.entry({ name: 'note.txt' }, 'note');
        archive.finalize();
      }
    });
    const read = await readWorkspaceFiles(container, ['dir', 'note.txt'], 1024, budget);
    expect(read.refused).toEqual(['dir (not a regular file)']);
    expect(read.files.map((f) => [f.path, f.bytes.toString()])).toEqual([['note.txt', 'note']]);
    expect(requests.map((r) => r.aborted())).toEqual([true, true]);
  });
});
