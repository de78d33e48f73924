import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkSkillStore } from '../../src/cli/doctor/skills.js';
import { DirSkillStore } from '../../src/worker/skills/dir-store.js';
import { SKILL_LIMITS } from '../../src/worker/skills/hashing.js';
import { SKILL_TABLES } from '../../src/worker/skills/pg-schema.js';
import { PgSkillStore } from '../../src/worker/skills/pg-store.js';
import type { SkillStore } from '../../src/worker/skills/store.js';
import { addSkill, approveSkill, type Registry, readSkillSource } from '../../src/worker/skills/vetting.js';
import { testInstance } from '../../testkit/redis.js';
import { describePostgres } from '../helpers/postgres.js';
import { greeterSkill, writeSkill } from '../helpers/skill-fixtures.js';
import { vetSkill } from '../helpers/skill-stack.js';
import { dropSkillRows } from '../helpers/skills-postgres.js';

/**
 * The skills store in PostgreSQL (SANDBOT_DATABASE_URL) on a real database, side by side with the
 * folder: the same answers to the same calls, approval pinning over the rows' bytes (an edited, added
 * or escaping row refused), the limits, the ledger's chain across writers and a tampered row named,
 * and the schema version. The CLI and a worker on other hosts: skills-postgres-hosts.test.ts.
 */

const instance = testInstance('skills-pg');
const { files: FILES, ledger: LEDGER } = SKILL_TABLES;

describePostgres('skills in PostgreSQL', (url) => {
  const sql = new pg.Client({ connectionString: url });
  const stores: PgSkillStore[] = [];
  let dir: string;
  const open = () => {
    const store = new PgSkillStore(url, instance);
    stores.push(store);
    return store;
  };
  const registry = (store: SkillStore): Registry => ({ store, ledger: store.ledger });

  beforeAll(async () => {
    await sql.connect();
    dir = await mkdtemp(join(tmpdir(), 'sandbot-skills-pg-'));
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    await dropSkillRows(url, instance);
    await sql.end();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers stage, save, get, list, pick, remove and readFiles as the folder does', async () => {
    const [db, folder] = [open(), new DirSkillStore(dir)];
    const seen: unknown[][] = [];
    for (const store of [db, folder]) {
      await vetSkill(registry(store), greeterSkill('1.0.0'));
      await vetSkill(registry(store), greeterSkill('1.10.0'));
      // Added, not approved: pick still prefers the newest approved version.
      await addSkill(registry(store), await writeSkill(greeterSkill('2.0.0')), 'ann');
      const picked = await store.pick('greeter');
      const files = await store.readFiles({ name: 'greeter', version: '1.10.0' });
      const one = await store.get('greeter', '1.0.0');
      if (!one) throw new Error('no greeter@1.0.0');
      await store.save({ ...one, addedBy: 'bob' });
      seen.push([
        (await store.list()).map((r) => `${r.name}@${r.version} ${r.status} ${r.addedBy}`),
        `${picked?.version} ${picked?.status}`,
        files.map((f) => `${f.path} ${f.bytes.length}`),
        await store.verify(one).then((v) => v.ok),
        await store.get('greeter', '9.9.9'),
        await store.get('../etc', '1.0.0'),
        await store.remove('greeter', '2.0.0'),
        await store.remove('greeter', '2.0.0'),
        (await store.list('greeter')).map((r) => r.version),
        (await store.ledger.read()).map((e) => `${e.seq} ${e.action} ${e.skill}`),
        await store.ledger.verify(),
      ]);
    }
    expect(seen[0]).toEqual(seen[1]);
    expect(seen[0]?.[0]).toEqual([
      'greeter@2.0.0 pending ann',
      'greeter@1.10.0 approved test-admin',
      'greeter@1.0.0 approved bob',
    ]);
    expect(seen[0]?.[1]).toBe('1.10.0 approved');
    expect(seen[0]?.[10]).toEqual({ entries: 8 });
    // The folder holds nothing of the database's and the other way round.
    expect((await open().list()).length).toBe(2);
  });

  it('pins the approval to the bytes in the rows: an edited, added or escaping row is refused', async () => {
    const store = open();
    const record = await store.get('greeter', '1.0.0');
    if (!record) throw new Error('no greeter@1.0.0');
    expect(await store.verify(record)).toMatchObject({ ok: true });
    const where = `instance = $1 AND name = 'greeter' AND version = '1.0.0'`;
    await sql.query(
      `UPDATE ${FILES} SET bytes = bytes || convert_to('cat ~/.aws/credentials', 'UTF8') WHERE ${where} AND path = 'tools/greet.sh'`,
      [instance],
    );
    expect(await store.verify(record)).toEqual({
      ok: false,
      reason: 'its files changed since approval (changed: tools/greet.sh)',
    });
    // The approval cannot be renewed over changed bytes.
    await expect(
      approveSkill(registry(store), 'greeter@1.0.0', { by: 'eve', hosts: [], acceptFindings: false }),
    ).rejects.toThrow(/files changed since approval \(changed: tools\/greet\.sh\)/);

    const original = await readSkillSource(await writeSkill(greeterSkill('1.0.0')));
    await store.stage(record, original);
    expect(await store.verify(record)).toMatchObject({ ok: true });
    await sql.query(
      `INSERT INTO ${FILES} (instance, name, version, path, bytes) VALUES ($1, 'greeter', '1.0.0', 'evil.sh', 'x')`,
      [instance],
    );
    expect((await store.verify(record, record.hash)).ok).toBe(false);
    expect(await store.verify(record, record.hash)).toMatchObject({
      reason: expect.stringContaining('added: evil.sh'),
    });
    await sql.query(`UPDATE ${FILES} SET path = '../../etc/cron.d/x' WHERE ${where} AND path = 'evil.sh'`, [
      instance,
    ]);
    expect(await store.verify(record)).toEqual({
      ok: false,
      reason: 'its files cannot be read: ../../etc/cron.d/x: not a relative path inside the skill',
    });
    await sql.query(
      `UPDATE ${FILES} SET bytes = decode(repeat('61', $2), 'hex') WHERE ${where} AND path = '../../etc/cron.d/x'`,
      [instance, SKILL_LIMITS.maxFileBytes + 1],
    );
    await sql.query(`UPDATE ${FILES} SET path = 'big.txt' WHERE ${where} AND path = '../../etc/cron.d/x'`, [
      instance,
    ]);
    expect(await store.verify(record)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^its files cannot be read: big\.txt: the skill is over its size limit/),
    });
    await store.stage(record, original);
    expect(await store.verify(record)).toMatchObject({ ok: true });
  });

  it('refuses to stage what a folder could not hold', async () => {
    const store = open();
    const record = await store.get('greeter', '1.0.0');
    if (!record) throw new Error('no greeter@1.0.0');
    const big = { path: 'big.txt', bytes: Buffer.alloc(SKILL_LIMITS.maxFileBytes + 1) };
    await expect(store.stage(record, [big])).rejects.toThrow(
      /big\.txt is \d+ bytes; a skill file may have at most/,
    );
    await expect(store.stage(record, [{ path: '../x', bytes: Buffer.from('x') }])).rejects.toThrow(
      '../x: not a relative path inside the skill',
    );
    await expect(store.save({ ...record, version: '7.7.7' })).rejects.toThrow(/greeter@7\.7\.7 is not in /);
    // Nothing of the refused stages was written.
    expect(await store.verify(record)).toMatchObject({ ok: true });
  });

  it('chains the ledger across writers in one order, and names a tampered or deleted row', async () => {
    const [one, two] = [open(), open()];
    const before = (await one.ledger.verify()).entries;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? one : two).ledger.append({
          actor: `admin:w${i % 2}`,
          action: 'scan',
          skill: `s@${i}`,
          data: { i },
        }),
      ),
    );
    expect(await two.ledger.verify()).toEqual({ entries: before + 20 });
    const entries = await one.ledger.read();
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: before + 20 }, (_, i) => i + 1));
    await sql.query(
      `UPDATE ${LEDGER} SET entry = replace(entry, 'admin:w1', 'admin:eve') WHERE instance = $1 AND seq = $2`,
      [instance, before + 2],
    );
    expect(await one.ledger.verify()).toEqual({
      entries: before + 1,
      broken: `row seq ${before + 2}: content does not match its hash (edited)`,
    });
    await sql.query(`DELETE FROM ${LEDGER} WHERE instance = $1 AND seq >= $2 AND seq <= $3`, [
      instance,
      before + 2,
      before + 3,
    ]);
    expect(await one.ledger.verify()).toEqual({
      entries: before + 1,
      broken: `row seq ${before + 4}: seq ${before + 4} after ${before + 1} (entries missing or reordered)`,
    });
    // Appending goes on after the last row, whatever came before.
    const next = await two.ledger.append({ actor: 'admin:ann', action: 'remove', skill: 'x@1', data: {} });
    expect(next.seq).toBe(before + 21);
  });

  it('tells the doctor where skills are, and names skills left in the unused folder', async () => {
    const settings = { SANDBOT_INSTANCE: instance, SANDBOT_DATABASE_URL: url, SANDBOT_SKILLS_DIR: dir };
    const check = await checkSkillStore(settings);
    expect(check).toMatchObject({ name: 'Skills', ok: true });
    expect(check.detail).toMatch(
      new RegExp(
        `^in postgresql://sandbot:\\*\\*\\*@.* \\(instance ${instance}\\) sandbot_skills: 2 skill version\\(s\\), \\d+ ledger entries; SANDBOT_SKILLS_DIR is not used; the 2 skill version\\(s\\) in ${dir} are not used: add them again`,
      ),
    );
    expect(check.detail).not.toContain(new URL(url).password);
    const away = await checkSkillStore({
      ...settings,
      SANDBOT_DATABASE_URL: 'postgresql://sandbot:pw@127.0.0.1:9/sandbot',
    });
    expect(away).toMatchObject({
      ok: false,
      detail: expect.stringMatching(
        /^cannot reach the skills database postgresql:\/\/sandbot:\*\*\*@127\.0\.0\.1:9\/sandbot \(instance .*\): connect ECONNREFUSED/,
      ),
      fix: expect.stringContaining('unset it to keep skills in SANDBOT_SKILLS_DIR'),
    });
  });

  it('refuses tables of a newer schema version', async () => {
    await sql.query(`UPDATE sandbot_schema SET version = 99 WHERE component = 'skills'`);
    try {
      await expect(open().list()).rejects.toThrow(
        /the skills tables in postgresql:\/\/.* are schema v99, newer than this sandbot's v1: upgrade sandbot/,
      );
    } finally {
      await sql.query(`UPDATE sandbot_schema SET version = 1 WHERE component = 'skills'`);
    }
    expect((await open().list()).length).toBe(2);
  });
});
