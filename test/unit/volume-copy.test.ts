import type { Header } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { cutReason, relocatedHeader } from '../../sandbox/host/driver/volume-copy.js';
import { FreeCommand, HostCommand, MoveCommand } from '../../src/shared/hosts/host-commands.js';

const entry = (name: string, more: Partial<Header> = {}): Header =>
  ({
    name,
    type: 'file',
    mode: 0o640,
    uid: 1000,
    gid: 1000,
    size: 5,
    mtime: new Date(1000),
    ...more,
  }) as Header;

describe('relocatedHeader (a drain copies a sandbox’s archive entries into the target folder)', () => {
  it('makes entries relative to the folder, owners, modes, sizes and times kept', () => {
    expect(relocatedHeader(entry('workspace/sub/notes'), 'workspace')).toEqual({
      name: 'sub/notes',
      type: 'file',
      mode: 0o640,
      uid: 1000,
      gid: 1000,
      size: 5,
      mtime: new Date(1000),
    });
    expect(
      relocatedHeader(entry('workspace/sub/', { type: 'directory', mode: 0o711, size: 0 }), 'workspace'),
    ).toMatchObject({ name: 'sub', type: 'directory', mode: 0o711, size: 0 });
  });

  it('keeps mode 000 as 000 in the archive it writes', async () => {
    const { pack, extract } = await import('tar-stream');
    const moved = relocatedHeader(entry('workspace/locked', { mode: 0, size: 0 }), 'workspace');
    const archive = pack();
    (archive.entry(moved ?? { name: 'missing' }) as unknown as NodeJS.WritableStream).end();
    archive.finalize();
    const modes: number[] = [];
    const reader = extract();
    reader.on('entry', (header, body, next) => {
      modes.push(header.mode ?? -1);
      body.resume();
      next();
    });
    await new Promise((resolve) => {
      reader.on('finish', () => resolve(undefined));
      archive.pipe(reader);
    });
    expect(modes).toEqual([0]);
  });

  it('skips the folder itself and a capped volume’s lost+found, and anything outside the folder', () => {
    expect(relocatedHeader(entry('workspace/', { type: 'directory' }), 'workspace')).toBeUndefined();
    expect(
      relocatedHeader(entry('workspace/lost+found/', { type: 'directory' }), 'workspace'),
    ).toBeUndefined();
    expect(relocatedHeader(entry('workspace/lost+found/#12'), 'workspace')).toBeUndefined();
    expect(relocatedHeader(entry('session/x'), 'workspace')).toBeUndefined();
    expect(relocatedHeader(entry('workspace-other/x'), 'workspace')).toBeUndefined();
    expect(relocatedHeader(entry('workspace/../etc/cron.d/x'), 'workspace')).toBeUndefined();
    expect(relocatedHeader(entry('workspace/a//b'), 'workspace')).toBeUndefined();
    expect(
      relocatedHeader(entry('workspace/b', { type: 'link', linkname: 'workspace/../x' }), 'workspace'),
    ).toBeUndefined();
    // A user's own folder named like it, deeper down, is copied.
    expect(relocatedHeader(entry('workspace/a/lost+found'), 'workspace')?.name).toBe('a/lost+found');
  });

  it('keeps a symbolic link’s text as it is, and a hard link relative like its entry', () => {
    const link = relocatedHeader(
      entry('workspace/outside', { type: 'symlink', linkname: '/etc/passwd', size: 0 }),
      'workspace',
    );
    expect(link).toMatchObject({ name: 'outside', type: 'symlink', linkname: '/etc/passwd', size: 0 });
    const hard = relocatedHeader(
      entry('workspace/b', { type: 'link', linkname: 'workspace/a', size: 0 }),
      'workspace',
    );
    expect(hard).toMatchObject({ name: 'b', type: 'link', linkname: 'a' });
    expect(
      relocatedHeader(entry('workspace/c', { type: 'link', linkname: 'etc/shadow' }), 'workspace'),
    ).toBeUndefined();
  });

  it('says why a copy stopped', () => {
    const budget = { maxBytes: 1024 * 1024, maxMs: 570_000 };
    expect(cutReason({ reason: 'bytes', bytes: 2_000_000, ms: 10 }, budget)).toBe(
      'more than 1 MiB to copy (--max-mb): stopped',
    );
    expect(cutReason({ reason: 'time', bytes: 10, ms: 570_000 }, budget)).toBe(
      'the copy took longer than 570 s: stopped',
    );
  });
});

describe('host commands (the CLI asks a host’s workers through Redis)', () => {
  const move = {
    kind: 'move',
    id: '6f1c1c1e-3b7a-4c55-8f43-0e6a3c2b9d10',
    conversation: 'web:abc',
    from: 'HOST-B',
    to: 'HOST-A',
    maxBytes: 1024,
    by: 'admin:ops',
    expiresAt: 1,
  };
  it('reads a move and a free, and refuses what is neither', () => {
    expect(HostCommand.parse(move)).toEqual(MoveCommand.parse(move));
    expect(HostCommand.parse({ kind: 'free', conversation: 'web:abc', to: 'HOST-A' })).toEqual(
      FreeCommand.parse({ kind: 'free', conversation: 'web:abc', to: 'HOST-A' }),
    );
    expect(HostCommand.safeParse({ ...move, maxBytes: 0 }).success).toBe(false);
    expect(HostCommand.safeParse({ ...move, kind: 'wipe' }).success).toBe(false);
    expect(HostCommand.safeParse({ ...move, conversation: 'not a conversation' }).success).toBe(false);
  });
});
