import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

// The gateway process loads no engine client, no model client and no worker code (issue #16): its
// readiness comes from what workers report in Redis. Followed from its entry points through every
// relative import (static, re-exports and dynamic, the lazily loaded adapters included).

const ENTRIES = [
  'src/gateway/start-gateway.ts',
  ...readdirSync('adapters', { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join('adapters', file)),
];

/** Runtime imports only: `import type` and `export type` load nothing. */
const IMPORT =
  /(?:import|export)\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function closure(entries: readonly string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [...entries];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2] ?? '';
      if (specifier.startsWith('.')) {
        const target = normalize(join(dirname(file), specifier)).replace(/\.js$/, '.ts');
        if (existsSync(target)) queue.push(target);
      } else if (!specifier.startsWith('node:')) {
        const parts = specifier.split('/');
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier));
      }
    }
  }
  return { files, packages };
}

describe('the gateway process', () => {
  const { files, packages } = closure(ENTRIES);

  it('follows its imports (the check sees the files it loads)', () => {
    expect(files).toContain('src/gateway/http-server.ts');
    expect(files).toContain('adapters/web/http-routes.ts');
    expect(packages).toContain('fastify');
  });

  it('loads no worker code and no sandbox host code', () => {
    expect([...files].filter((f) => f.startsWith('src/worker/') || f.startsWith('sandbox/'))).toEqual([]);
  });

  it('loads neither the container engine client nor the model client', () => {
    expect([...packages].filter((p) => p === 'dockerode' || p === 'ollama')).toEqual([]);
  });
});
