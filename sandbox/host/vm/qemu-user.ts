import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The system user QEMU drops to (-runas): its own, so a QEMU taken over by its guest holds no root and
 * shares no files or processes with other services (as `nobody` would). Made on first need; needs root,
 * as running QEMU with sandbot's disks does.
 */
export async function ensureQemuUser(name: string): Promise<void> {
  const exists = await run('getent', ['passwd', name]).then(
    () => true,
    () => false,
  );
  if (exists) return;
  await run('useradd', [
    '--system',
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/usr/sbin/nologin',
    name,
  ]).catch((error: Error) => {
    throw new Error(
      `could not create the system user ${name} that QEMU runs as (useradd: ${error.message.trim()}); start the micro-VM as root, or create the user`,
    );
  });
}
