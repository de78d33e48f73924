import { describe, expect, it } from 'vitest';
import { type LedgerEntry, nextLedgerEntry, verifyLedgerLines } from '../../src/worker/skills/ledger.js';
import { safePath } from '../../src/worker/skills/pg-store.js';

/** The pure parts of the database backend: which stored paths may be mounted, the ledger's rows checked. */

describe('safePath', () => {
  it.each(['SKILL.md', 'tools/greet.sh', 'a/b/c.txt', '.hidden', 'tools/..x', 'sp ace.md'])(
    'accepts %s',
    (path) => expect(safePath(path)).toBe(true),
  );
  it.each(['', '/etc/passwd', '../x', 'a/../../x', './a', 'a/./b', 'a//b', 'a/', '..', 'a\0b'])(
    'refuses %j',
    (path) => expect(safePath(path)).toBe(false),
  );
});

describe('verifyLedgerLines', () => {
  const chain = (n: number): LedgerEntry[] => {
    const entries: LedgerEntry[] = [];
    for (let i = 0; i < n; i++)
      entries.push(
        nextLedgerEntry(entries.at(-1), { actor: 'admin:ann', action: 'scan', skill: `s@${i}`, data: { i } }),
      );
    return entries;
  };
  const where = (i: number) => `row seq ${i + 1}`;

  it('passes a whole chain and names the first broken row by the locator', () => {
    const lines = chain(4).map((e) => JSON.stringify(e));
    expect(verifyLedgerLines(lines, where)).toEqual({ entries: 4 });
    const edited = [...lines];
    edited[2] = (edited[2] ?? '').replace('s@2', 's@9');
    expect(verifyLedgerLines(edited, where)).toEqual({
      entries: 2,
      broken: 'row seq 3: content does not match its hash (edited)',
    });
    expect(verifyLedgerLines(['{"seq":'], where)).toEqual({ entries: 0, broken: 'row seq 1: not JSON' });
  });

  it('chains after a damaged last entry from its seq and hash', () => {
    const next = nextLedgerEntry(
      { seq: 7, hash: 'f'.repeat(64) },
      {
        actor: 'admin:bob',
        action: 'remove',
        skill: 'x@1',
        data: {},
      },
    );
    expect(next).toMatchObject({ seq: 8, prevHash: 'f'.repeat(64) });
  });
});
