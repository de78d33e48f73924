import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readSkillDir, type SkillFile } from './hashing.js';
import { FileSkillLedger } from './ledger.js';
import { compareVersions, SkillName, SkillVersion } from './manifest.js';
import {
  pickFrom,
  SkillRecord,
  type SkillStore,
  type Verification,
  validRef,
  verifyStored,
} from './store.js';

/**
 * Skills on disk, under SANDBOT_SKILLS_DIR: `<name>/<version>/files/…` holds the exact bytes that were
 * scanned, `<name>/<version>/record.json` what is known about them (hashes, scan findings, approval),
 * `ledger.jsonl` the ledger. The default: a vetted skill is an artifact an admin can read and diff, the
 * CLI vets without a running stack or database, and a change to the files on disk is exactly what
 * approval pinning must catch. Several hosts need this folder shared, or PostgreSQL (pg-store.ts).
 */
export class DirSkillStore implements SkillStore {
  readonly ledger: FileSkillLedger;

  constructor(readonly root: string) {
    this.ledger = new FileSkillLedger(root);
  }

  private dir(name: string, version: string): string {
    return join(this.root, SkillName.parse(name), SkillVersion.parse(version));
  }

  async stage(record: SkillRecord, files: readonly SkillFile[]): Promise<void> {
    const target = this.dir(record.name, record.version);
    const temp = `${target}.staging-${randomUUID().slice(0, 8)}`;
    await rm(temp, { recursive: true, force: true });
    for (const file of files) {
      const path = join(temp, 'files', file.path);
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, file.bytes, { mode: 0o644 });
    }
    await mkdir(join(temp, 'files'), { recursive: true });
    await writeFile(join(temp, 'record.json'), `${JSON.stringify(SkillRecord.parse(record), null, 2)}\n`);
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
  }

  async save(record: SkillRecord): Promise<void> {
    const path = join(this.dir(record.name, record.version), 'record.json');
    const temp = `${path}.${randomUUID().slice(0, 8)}`;
    await writeFile(temp, `${JSON.stringify(SkillRecord.parse(record), null, 2)}\n`);
    await rename(temp, path);
  }

  async get(name: string, version: string): Promise<SkillRecord | undefined> {
    if (!validRef(name, version)) return undefined;
    let text: string;
    try {
      text = await readFile(join(this.dir(name, version), 'record.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = SkillRecord.safeParse(JSON.parse(text));
    if (!parsed.success)
      throw new Error(
        `${name}@${version}: its record.json is damaged (${parsed.error.issues[0]?.message}); add the skill again`,
      );
    return parsed.data;
  }

  async list(name?: string): Promise<SkillRecord[]> {
    const names = name ? [name] : await dirNames(this.root);
    const records: SkillRecord[] = [];
    for (const n of names.filter((x) => SkillName.safeParse(x).success).sort()) {
      const versions = (await dirNames(join(this.root, n))).filter((v) => SkillVersion.safeParse(v).success);
      versions.sort((a, b) => compareVersions(b, a));
      for (const v of versions) {
        const record = await this.get(n, v).catch(() => undefined);
        if (record) records.push(record);
      }
    }
    return records;
  }

  pick(name: string, version?: string): Promise<SkillRecord | undefined> {
    return pickFrom(this, name, version);
  }

  async remove(name: string, version: string): Promise<boolean> {
    const record = await this.get(name, version);
    if (!record) return false;
    await rm(this.dir(name, version), { recursive: true, force: true });
    return true;
  }

  async readFiles(record: Pick<SkillRecord, 'name' | 'version'>): Promise<SkillFile[]> {
    return readSkillDir(join(this.dir(record.name, record.version), 'files'));
  }

  verify(record: SkillRecord, expected?: string): Promise<Verification> {
    return verifyStored(this, record, expected);
  }

  async close(): Promise<void> {}
}

async function dirNames(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
