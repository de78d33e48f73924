import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { z } from 'zod';

/**
 * `docker save | docker load` of only what the guest lacks. An image's layers are identified by chain
 * ids (each layer's diff id hashed onto its parent's); `docker load` reads a layer's file only when the
 * engine lacks that chain, so layers the guest has can be left out of the archive. A rebuilt sandbox
 * image then costs its changed top layers (a few MB), not the 300 MB base, which under emulation is
 * minutes of work for the guest.
 */

/** Chain ids of a layer stack, from its diff ids (the OCI image spec's definition). */
export function chainIds(diffIds: readonly string[]): string[] {
  const chains: string[] = [];
  for (const diffId of diffIds) {
    const parent = chains.at(-1);
    chains.push(
      parent ? `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}` : diffId,
    );
  }
  return chains;
}

/** Which of the image's layer files to send: those whose chain the guest does not have. */
export function layersToSend(diffIds: readonly string[], guestChains: ReadonlySet<string>): boolean[] {
  return chainIds(diffIds).map((chain) => !guestChains.has(chain));
}

/** Every chain id the engine holds, from the layer stacks of its images. */
async function engineChains(docker: Dockerode): Promise<Set<string>> {
  const chains = new Set<string>();
  for (const image of await docker.listImages({ all: true })) {
    const info = await docker.getImage(image.Id).inspect();
    for (const chain of chainIds(info.RootFS?.Layers ?? [])) chains.add(chain);
  }
  return chains;
}

const SaveManifest = z.array(z.object({ Config: z.string(), Layers: z.array(z.string()) })).min(1);

/** Reads the archive's manifest and symlinks (a repeated layer is saved once and linked). */
async function readArchive(file: string): Promise<{ layers: string[]; links: Map<string, string> }> {
  const extract = tar.extract();
  const links = new Map<string, string>();
  let manifest: unknown;
  extract.on('entry', (header, stream, next) => {
    if (header.type === 'symlink' && header.linkname) {
      links.set(header.name, posix.normalize(posix.join(posix.dirname(header.name), header.linkname)));
    }
    if (header.name !== 'manifest.json') {
      stream.on('end', next).resume();
      return;
    }
    // A manifest that is not JSON fails the read (and so the transfer), with the parser's words.
    buffer(stream)
      .then((bytes) => {
        manifest = JSON.parse(bytes.toString('utf8'));
        next();
      })
      .catch(next);
  });
  await pipeline(createReadStream(file), extract);
  const parsed = SaveManifest.safeParse(manifest);
  if (!parsed.success) throw new Error('the saved image archive has no usable manifest.json');
  return { layers: parsed.data[0]?.Layers ?? [], links };
}

export interface TransferResult {
  layers: number;
  sent: number;
}

/** Saves `tag` from the host engine and loads it into the guest, leaving out the layers it has. */
export async function transferImage(host: Dockerode, guest: Dockerode, tag: string): Promise<TransferResult> {
  const info = await host.getImage(tag).inspect();
  const send = layersToSend(info.RootFS?.Layers ?? [], await engineChains(guest));
  const scratch = await mkdtemp(join(tmpdir(), 'sandbot-vm-image-'));
  try {
    const file = join(scratch, 'image.tar');
    await pipeline(await host.getImage(tag).get(), createWriteStream(file, { mode: 0o600 }));
    const { layers, links } = await readArchive(file);
    const resolve = (name: string) => links.get(name) ?? name;
    const kept = new Set(layers.filter((_, i) => send[i] !== false).map(resolve));
    const skipped = new Set(layers.map(resolve).filter((name) => !kept.has(name)));
    const extract = tar.extract();
    const pack = tar.pack();
    extract.on('entry', (header, stream, next) => {
      if (skipped.has(header.name) || skipped.has(resolve(header.name))) {
        stream.on('end', next).resume();
        return;
      }
      stream.pipe(pack.entry(header, next));
    });
    extract.on('finish', () => pack.finalize());
    extract.on('error', (error) => pack.destroy(error));
    createReadStream(file).pipe(extract);
    // tar-stream's Pack is a streamx Readable; dockerode pipes it like a Node stream.
    const loading = await guest.loadImage(pack as unknown as NodeJS.ReadableStream, { quiet: true });
    await new Promise<void>((done, fail) => {
      guest.modem.followProgress(loading, (error: Error | null) => (error ? fail(error) : done()));
    });
    return { layers: layers.length, sent: kept.size };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
