import { createHash, randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import { extract, pack } from 'tar-stream';
import { type ConversationId, shortHash } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import { describeDifference, type FileHash } from '../../../src/contracts/skills/file-hashes.js';
import { sandboxNames } from './docker-spec.js';
import type { SkillMount } from './skill-mount.js';

export interface SkillContent {
  name: string;
  version: string;
  hash: string;
  /** When it was approved: a new approval gets a fresh volume even for the same content. */
  approvedAt: string;
  files: readonly { path: string; bytes: Buffer }[];
  /** Paths (relative) that tools run: made executable in the volume. */
  executables: ReadonlySet<string>;
}

export interface ExpectedSkill {
  name: string;
  files: readonly FileHash[];
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | undefined)?.statusCode;
}

/**
 * Copies approved skill files into Docker volumes through the engine's archive API (so it works with
 * any engine DOCKER_HOST names, a micro-VM's included), one volume per approved content, and checks
 * what a sandbox actually sees under /skills against the approved hashes. A throwaway container that
 * never starts holds the volume read-write while it is filled; sandboxes mount it read-only.
 */
export class SkillVolumes {
  private readonly ready = new Set<string>();

  constructor(
    private readonly docker: Dockerode,
    private readonly instance: string,
    private readonly image: string,
    private readonly logger?: Logger,
  ) {}

  volumeName(content: Pick<SkillContent, 'name' | 'version' | 'hash' | 'approvedAt'>): string {
    const id = shortHash(`${content.name}@${content.version}#${content.hash}#${content.approvedAt}`).slice(
      0,
      16,
    );
    return `${this.instance}-skill-${content.name}-${id}`;
  }

  async ensure(content: SkillContent): Promise<SkillMount> {
    const volume = this.volumeName(content);
    const mount = { name: content.name, volume };
    if (this.ready.has(volume)) return mount;
    try {
      await this.docker.getVolume(volume).inspect();
      this.ready.add(volume);
      return mount;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const Labels = {
      'sandbot.instance': this.instance,
      'sandbot.kind': 'skill',
      'sandbot.skill': `${content.name}@${content.version}`,
      'sandbot.skill.hash': content.hash,
    };
    await this.docker.createVolume({ Name: volume, Labels });
    const loader = await this.docker.createContainer({
      name: `${volume}-load-${randomUUID().slice(0, 8)}`,
      Image: this.image,
      Cmd: ['true'],
      Labels: { ...Labels, 'sandbot.kind': 'skill-loader' },
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        Mounts: [{ Type: 'volume', Source: volume, Target: '/skills', ReadOnly: false }],
        LogConfig: { Type: 'none', Config: {} },
      },
    });
    try {
      await loader.putArchive(archiveOf(content) as unknown as NodeJS.ReadableStream, { path: '/skills' });
      const seen = await readTree(loader, '/skills');
      const problem = describeDifference(
        content.files.map((f) => ({ path: f.path, sha256: sha(f.bytes) })),
        hashList(seen),
        'extra',
      );
      if (problem)
        throw new Error(`skill ${content.name}: the volume does not hold what was copied (${problem})`);
    } catch (error) {
      await loader.remove({ force: true }).catch(() => undefined);
      await this.docker
        .getVolume(volume)
        .remove()
        .catch(() => undefined);
      throw error;
    }
    await loader.remove({ force: true }).catch(() => undefined);
    this.ready.add(volume);
    this.logger?.info({ skill: `${content.name}@${content.version}`, volume }, 'skill volume filled');
    return mount;
  }

  /** What the conversation's sandbox sees under /skills, against the approved files: problems in words. */
  async verifyMounted(conversation: ConversationId, expected: readonly ExpectedSkill[]): Promise<string[]> {
    const container = this.docker.getContainer(sandboxNames(this.instance, conversation).container);
    const seen = await readTree(container, '/skills');
    const problems: string[] = [];
    const names = new Set([...seen.keys()].map((p) => p.split('/')[0] ?? ''));
    for (const skill of expected) {
      names.delete(skill.name);
      const own = new Map<string, string>();
      for (const [path, hash] of seen) {
        if (path.startsWith(`${skill.name}/`)) own.set(path.slice(skill.name.length + 1), hash);
      }
      const problem = describeDifference(skill.files, hashList(own), 'extra');
      if (problem) problems.push(`${skill.name}: ${problem}`);
    }
    for (const name of names) if (name) problems.push(`${name}: mounted but not enabled`);
    return problems;
  }

  /** After a mismatch: drop the sandbox container (its volumes stay) and the skill volumes, to refill next time. */
  async discard(conversation: ConversationId, volumes: readonly string[]): Promise<void> {
    const container = this.docker.getContainer(sandboxNames(this.instance, conversation).container);
    await container.remove({ force: true }).catch(() => undefined);
    for (const volume of volumes) {
      this.ready.delete(volume);
      // In use by another conversation's sandbox (409): it stays; that sandbox's own check decides.
      await this.docker
        .getVolume(volume)
        .remove()
        .catch(() => undefined);
    }
  }
}

function archiveOf(content: SkillContent) {
  const archive = pack();
  const root = { uid: 0, gid: 0 };
  const dirs = new Set<string>();
  for (const file of content.files) {
    const parts = file.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      archive.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, ...root });
    }
    const mode = content.executables.has(file.path) ? 0o755 : 0o644;
    archive.entry({ name: file.path, mode, ...root }, file.bytes);
  }
  archive.finalize();
  return archive;
}

/** Files under `path` in a container, by path relative to it, with their sha256; links count as content. */
async function readTree(container: Dockerode.Container, path: string): Promise<Map<string, string>> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await container.getArchive({ path });
  } catch (err) {
    if (statusOf(err) === 404) return new Map();
    throw err;
  }
  const top = path.replace(/^\/+/, '').split('/').at(-1) ?? '';
  const files = new Map<string, string>();
  const reader = extract();
  await new Promise<void>((resolve, reject) => {
    reader.on('entry', (header, body, next) => {
      const relative = header.name.replace(new RegExp(`^\\.?/?${top}/?`), '').replace(/\/$/, '');
      if (header.type === 'directory' || relative === '') {
        body.on('end', () => next());
        body.resume();
        return;
      }
      const hash = createHash('sha256');
      if (header.type !== 'file') hash.update(`${header.type}:${header.linkname ?? ''}`);
      body.on('data', (chunk: unknown) => {
        hash.update(chunk as Buffer);
      });
      body.on('end', () => {
        files.set(relative, header.type === 'file' ? hash.digest('hex') : `not a file (${header.type})`);
        next();
      });
    });
    reader.on('finish', resolve);
    reader.on('error', reject);
    stream.on('error', reject);
    stream.pipe(reader as unknown as NodeJS.WritableStream);
  });
  return files;
}

const hashList = (files: ReadonlyMap<string, string>): FileHash[] =>
  [...files].map(([path, sha256]) => ({ path, sha256 }));

function sha(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
