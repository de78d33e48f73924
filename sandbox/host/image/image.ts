import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Dockerode from 'dockerode';
import { build } from 'esbuild';
import { buildStatxShim } from './gvisor-shim.js';

/** Built by sandbox/base/build-base.sh where no registry can be reached. */
export const LOCAL_BASE_IMAGE = 'sandbot-base:bookworm';
export const PUBLIC_BASE_IMAGE = 'node:20-bookworm-slim';
/** npm packages the runtime may import (bundled into it). */
export const SANDBOX_PACKAGES = ['zod'] as const;
const RUNTIME_DIR = 'dist/sandbox/runtime';

/** An explicit choice wins; otherwise the local base when it was built, else the public node image. */
export function chooseBaseImage(explicit: string | undefined, localBaseExists: boolean): string {
  if (explicit !== undefined && explicit.trim() !== '') return explicit.trim();
  return localBaseExists ? LOCAL_BASE_IMAGE : PUBLIC_BASE_IMAGE;
}

export async function resolveBaseImage(docker: Dockerode, explicit?: string): Promise<string> {
  if (explicit !== undefined && explicit.trim() !== '') return chooseBaseImage(explicit, false);
  return chooseBaseImage(undefined, await imageExists(docker, LOCAL_BASE_IMAGE));
}

export async function imageExists(docker: Dockerode, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

/** Module specifiers of compiled ESM (tsc output): static imports/exports, side-effect and dynamic imports. */
export function importSpecifiers(source: string): string[] {
  const pattern =
    /(?:^|[\s;])(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/gm;
  const found = new Set<string>();
  for (const match of source.matchAll(pattern)) {
    const specifier = match[1] ?? match[2] ?? match[3];
    if (specifier) found.add(specifier);
  }
  return [...found];
}

/** The npm package a bare specifier names ("zod/v4" → "zod", "@a/b/c" → "@a/b"). */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

export interface RuntimeClosure {
  /** Project-relative paths (posix) of every compiled module the runtime loads. */
  files: string[];
  packages: string[];
}

/**
 * Follows the relative imports of the compiled runtime so the image holds exactly the modules it loads.
 * `read` returns a file's text, or undefined when it does not exist.
 */
export async function runtimeClosure(
  entries: string[],
  read: (path: string) => Promise<string | undefined>,
): Promise<RuntimeClosure> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [...entries];
  for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
    if (files.has(path)) continue;
    const source = await read(path);
    if (source === undefined) throw new Error(`the sandbox runtime imports ${path}, which does not exist`);
    files.add(path);
    for (const specifier of importSpecifiers(source)) {
      if (specifier.startsWith('.')) {
        queue.push(posix.normalize(posix.join(posix.dirname(path), specifier)));
      } else if (!isBuiltin(specifier)) {
        const pkg = packageOf(specifier);
        if (!(SANDBOX_PACKAGES as readonly string[]).includes(pkg)) {
          throw new Error(
            `the sandbox runtime (${path}) imports the package "${pkg}", which the sandbox image does not ship: ` +
              'add it to SANDBOX_PACKAGES in sandbox/host/image/image.ts or drop the import',
          );
        }
        packages.add(pkg);
      }
    }
  }
  return { files: [...files].sort(), packages: [...packages].sort() };
}

/** The directory holding sandbot's package.json (works from sandbox/ under tsx and from dist/sandbox/). */
export function findProjectRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json found above ${start}`);
  }
}

/**
 * The Dockerfile and the runtime, bundled into one module with the packages it imports (esbuild), in a
 * fresh directory. One file rather than the ~120 modules it is made of: a new sandbox's runtime is
 * ready sooner (fewer files opened through the container's file system; zod's unused parts left out).
 */
export async function stageSandboxContext(projectRoot: string): Promise<string> {
  const runtimeDir = join(projectRoot, RUNTIME_DIR);
  if (!existsSync(join(runtimeDir, 'main.js'))) {
    throw new Error(
      `the sandbox agent runtime is not built (${join(runtimeDir, 'main.js')} is missing): run npm run build first`,
    );
  }
  const entries = (await readdir(runtimeDir))
    .filter((f) => f.endsWith('.js'))
    .map((f) => `${RUNTIME_DIR}/${f}`);
  // Checked first: the runtime imports only its own modules, Node's and SANDBOX_PACKAGES.
  const closure = await runtimeClosure(entries, (path) =>
    readFile(join(projectRoot, path), 'utf8').catch(() => undefined),
  );
  const staging = await mkdtemp(join(tmpdir(), 'sandbot-sandbox-ctx-'));
  try {
    await cp(join(projectRoot, 'sandbox/Dockerfile'), join(staging, 'sandbox/Dockerfile'));
    // Only gVisor sandboxes load it; an image without it still serves every other layer.
    await buildStatxShim(projectRoot, staging);
    for (const pkg of closure.packages) {
      if (!existsSync(join(projectRoot, 'node_modules', pkg))) {
        throw new Error(`${join(projectRoot, 'node_modules', pkg)} is missing: run npm ci first`);
      }
    }
    await build({
      entryPoints: [join(runtimeDir, 'main.js')],
      outfile: join(staging, RUNTIME_DIR, 'main.js'),
      absWorkingDir: projectRoot,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'silent',
    });
    return staging;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

export interface BuildSandboxImageOptions {
  tag: string;
  baseImage: string;
  onProgress?: (line: string) => void;
  projectRoot?: string;
}

/** Builds the sandbox image with the classic builder; rejects with the builder's own message on failure. */
export async function buildSandboxImage(docker: Dockerode, options: BuildSandboxImageOptions): Promise<void> {
  const staging = await stageSandboxContext(options.projectRoot ?? findProjectRoot());
  try {
    const src = (await readdir(staging)).sort();
    const stream = await docker.buildImage(
      { context: staging, src },
      {
        t: options.tag,
        dockerfile: 'sandbox/Dockerfile',
        buildargs: { BASE_IMAGE: options.baseImage },
        rm: true,
        forcerm: true,
      },
    );
    await followBuild(stream, options.onProgress);
  } catch (err) {
    throw new Error(
      `building the sandbox image ${options.tag} from ${options.baseImage} failed: ${(err as Error).message}`,
    );
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Reads the builder's JSON-lines progress; the build failed when any line carries `error`. */
function followBuild(stream: NodeJS.ReadableStream, onProgress?: (line: string) => void): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    let pending = '';
    let error: string | undefined;
    const recent: string[] = [];
    const handle = (line: string) => {
      if (line.trim() === '') return;
      let event: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } };
      try {
        event = JSON.parse(line);
      } catch {
        event = { stream: line };
      }
      if (event.error !== undefined) error = event.errorDetail?.message ?? event.error;
      const text = (event.stream ?? event.status ?? '').trimEnd();
      if (text !== '') {
        recent.push(text);
        if (recent.length > 15) recent.shift();
        onProgress?.(text);
      }
    };
    stream.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) handle(line);
    });
    stream.on('error', reject);
    stream.on('end', () => {
      handle(pending);
      if (error === undefined) resolvePromise();
      else reject(new Error(`${error.trim()}\n--- last build output ---\n${recent.join('\n')}`));
    });
  });
}
