import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  chooseBaseImage,
  findProjectRoot,
  importSpecifiers,
  LOCAL_BASE_IMAGE,
  PUBLIC_BASE_IMAGE,
  packageOf,
  runtimeClosure,
  stageSandboxContext,
} from '../../sandbox/host/image/image.js';

describe('chooseBaseImage', () => {
  it('prefers an explicit base, then the local one, then the public node image', () => {
    expect(chooseBaseImage('my/base:1', true)).toBe('my/base:1');
    expect(chooseBaseImage('  my/base:1 ', false)).toBe('my/base:1');
    expect(chooseBaseImage(undefined, true)).toBe(LOCAL_BASE_IMAGE);
    expect(chooseBaseImage('', true)).toBe(LOCAL_BASE_IMAGE);
    expect(chooseBaseImage(undefined, false)).toBe(PUBLIC_BASE_IMAGE);
  });
});

describe('importSpecifiers', () => {
  it('finds static, side-effect, re-export and dynamic imports of compiled ESM', () => {
    const source = [
      "import { z } from 'zod';",
      'import * as fs from "node:fs";',
      "import './side-effect.js';",
      "export { a } from '../../src/protocol/agent.js';",
      "export * from './all.js';",
      'import {',
      '  b,',
      '  c,',
      "} from './multi.js';",
      "const m = await import('./lazy.js');",
      "const text = 'not an import';",
    ].join('\n');
    expect(importSpecifiers(source).sort()).toEqual(
      [
        '../../src/protocol/agent.js',
        './all.js',
        './lazy.js',
        './multi.js',
        './side-effect.js',
        'node:fs',
        'zod',
      ].sort(),
    );
  });

  it('names the package of a bare specifier', () => {
    expect(packageOf('zod')).toBe('zod');
    expect(packageOf('zod/v4')).toBe('zod');
    expect(packageOf('@scope/pkg/sub')).toBe('@scope/pkg');
  });
});

describe('runtimeClosure', () => {
  const files: Record<string, string> = {
    'dist/sandbox/runtime/main.js':
      "import { run } from './runtime.js';\nimport { readFile } from 'node:fs/promises';",
    'dist/sandbox/runtime/runtime.js':
      "import { X } from '../../src/contracts/protocol/agent.js';\nimport 'fs';",
    'dist/src/contracts/protocol/agent.js':
      "import { z } from 'zod';\nimport { K } from '../conversation/id.js';",
    'dist/src/contracts/conversation/id.js':
      "import { z } from 'zod/v4';\nimport { createHash } from 'node:crypto';",
    'dist/src/unused.js': "import 'pino';",
  };
  const read = async (path: string) => files[path];

  it('follows relative imports and collects the packages, leaving out unused modules', async () => {
    const closure = await runtimeClosure(['dist/sandbox/runtime/main.js'], read);
    expect(closure.files).toEqual([
      'dist/sandbox/runtime/main.js',
      'dist/sandbox/runtime/runtime.js',
      'dist/src/contracts/conversation/id.js',
      'dist/src/contracts/protocol/agent.js',
    ]);
    expect(closure.packages).toEqual(['zod']);
  });

  it('refuses a package the image does not ship, naming it', async () => {
    await expect(runtimeClosure(['dist/src/unused.js'], read)).rejects.toThrow(/"pino".*SANDBOX_PACKAGES/);
  });

  it('refuses an import of a module that does not exist', async () => {
    const broken = async (path: string) =>
      path === 'dist/a.js' ? "import { b } from './missing.js';" : undefined;
    await expect(runtimeClosure(['dist/a.js'], broken)).rejects.toThrow(
      /dist\/missing\.js, which does not exist/,
    );
  });
});

describe('stageSandboxContext', () => {
  it('says to build first when the runtime is not compiled', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'sandbot-noruntime-'));
    try {
      await expect(stageSandboxContext(empty)).rejects.toThrow(/run npm run build first/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('stages the runtime as one self-contained module that answers ready with no node_modules near it', async () => {
    const staging = await stageSandboxContext(findProjectRoot());
    try {
      const files = await readdir(staging, { recursive: true });
      expect(files.filter((f) => f.endsWith('.js'))).toEqual([join('dist', 'sandbox', 'runtime', 'main.js')]);
      expect(files.some((f) => f.startsWith('node_modules'))).toBe(false);
      // Run from a directory with nothing else in it: an import the bundle left out would fail here.
      const work = await mkdtemp(join(tmpdir(), 'sandbot-bundle-'));
      try {
        await writeFile(join(work, 'package.json'), '{"type":"module"}');
        await cp(join(staging, 'dist/sandbox/runtime/main.js'), join(work, 'main.js'));
        const child = spawn(process.execPath, [
          join(work, 'main.js'),
          '--workspace',
          work,
          '--session',
          work,
        ]);
        const first = await new Promise<string>((resolve) => {
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => {
            out += chunk.toString();
            if (out.includes('\n')) resolve(out);
          });
          child.on('exit', () => resolve(out));
        });
        child.kill();
        // The runtime starts each line with a newline (protocol/frames.ts).
        expect(JSON.parse(first.trim().split('\n')[0] ?? '')).toMatchObject({ type: 'ready' });
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  });
});
