import Module from 'node:module';
import { sep } from 'node:path';

/**
 * dockerode loads two optional parts at its own start that sandbot never uses: BuildKit sessions
 * (`./session`: gRPC and protobufjs, for `buildImage` with version "2") and the ssh:// transport
 * (`./ssh`: ssh2). Together they are about two thirds of dockerode's load time (≈100-150 ms of
 * `sandbot up`'s start on a 2-core machine). This makes each of those two requires return a
 * function that loads the real module on its first call and forwards to it, so behaviour is the same
 * when they are used and nothing is loaded when they are not.
 *
 * Only these two (requiring file, request) pairs are touched; anything else, and any layout these
 * packages may move to, loads as usual. Both modules export a single function (checked by
 * test/unit/lazy-engine-deps.test.ts).
 */
export const LAZY_REQUIRES: readonly { from: string; request: string }[] = [
  { from: ['', 'dockerode', 'lib', 'docker.js'].join(sep), request: './session' },
  { from: ['', 'docker-modem', 'lib', 'modem.js'].join(sep), request: './ssh' },
];

type Load = (
  this: unknown,
  request: string,
  parent: { filename?: string } | undefined,
  isMain: boolean,
) => unknown;
const internals = Module as unknown as { _load: Load };
let installed = false;

/** Installs the deferral (once per process); must run before dockerode is first loaded. */
export function deferUnusedEngineDeps(): void {
  if (installed) return;
  installed = true;
  const load = internals._load;
  internals._load = function deferringLoad(request, parent, isMain) {
    const filename = parent?.filename ?? '';
    if (!LAZY_REQUIRES.some((lazy) => lazy.request === request && filename.endsWith(lazy.from))) {
      return load.call(this, request, parent, isMain);
    }
    let real: ((...args: unknown[]) => unknown) | undefined;
    return function loadOnFirstCall(this: unknown, ...args: unknown[]) {
      real ??= load.call(internals, request, parent, isMain) as (...args: unknown[]) => unknown;
      return real.apply(this, args);
    };
  };
}
