import type Dockerode from 'dockerode';
import { demuxLogs } from '../layers/layer-check.js';

/**
 * Size-capped volumes on an engine whose host the worker cannot reach but through the engine itself
 * (the micro-VM's guest): the same ext4 images and loop mounts as disk-quota.ts, made by a short-lived
 * privileged helper container of the sandbox image, which formats the image files under `root` (bound
 * at the same path) and mounts them in the engine host's own mount namespace (nsenter into its pid 1),
 * where the sandboxes' bind mounts then find them. Trusted code only: the helper runs sandbot's own
 * script, never anything of an agent's, and is gone before the sandbox starts.
 */
export interface EngineQuotaMount {
  name: string;
  sizeMb: number;
  /** Folders made (owned by the agent) at the top of a new file system. */
  folders?: string[];
}

// Arguments arrive in the environment (ROOT, SPECS "name:size:folder,folder …", ACTION), never in the
// script's text. Each image is formatted and mounted under a lock, so concurrent opens do it once.
const SCRIPT = `set -eu
mkdir -p "$ROOT/mnt"
for spec in $SPECS; do
  name=$(echo "$spec" | cut -d: -f1); size=$(echo "$spec" | cut -d: -f2); folders=$(echo "$spec" | cut -d: -f3)
  img="$ROOT/$name.img"; mnt="$ROOT/mnt/$name"
  (
    flock 9
    if [ "$ACTION" = remove ]; then
      nsenter -t 1 -m -- sh -c 'if mountpoint -q "$1"; then umount -l "$1"; fi; rmdir "$1" 2>/dev/null || true' sh "$mnt"
      if [ -e "$img" ]; then echo "removed $name"; fi
      rm -f "$img" "$img.ready"
    else
      if [ ! -e "$img.ready" ]; then
        truncate -s "$size"M "$img"
        mkfs.ext4 -q -F -E root_owner=1000:1000 "$img"
        : > "$img.ready"
      fi
      nsenter -t 1 -m -- sh -c '
        mkdir -p "$2"
        mountpoint -q "$2" || mount -o loop,nosuid,nodev "$1" "$2"
        for f in $(echo "$3" | tr , " "); do
          [ -d "$2/$f" ] || { mkdir "$2/$f"; chown 1000:1000 "$2/$f"; }
        done' sh "$img" "$mnt" "$folders"
      echo "mounted $name"
    fi
  ) 9>"$img.lock"
  if [ "$ACTION" = remove ]; then rm -f "$img.lock"; fi
done
`;

/** Where the micro-VM's guest keeps capped volumes: on its data disk (mounted at /var/lib/docker). */
export const GUEST_QUOTA_ROOT = '/var/lib/docker/sandbot-quota';

const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** The helper container's spec (pure): what it may touch is `root`, and the host's mount namespace. */
export function quotaHelperSpec(
  image: string,
  instance: string,
  root: string,
  action: 'ensure' | 'remove',
  mounts: readonly EngineQuotaMount[],
): Dockerode.ContainerCreateOptions {
  for (const m of mounts) {
    if (!NAME.test(m.name) || !Number.isInteger(m.sizeMb) || (m.folders ?? []).some((f) => !NAME.test(f))) {
      throw new Error(`not a volume sandbot makes: ${JSON.stringify(m)}`);
    }
  }
  return {
    Image: image,
    User: '0:0',
    Entrypoint: ['bash', '-c', SCRIPT],
    Cmd: [],
    Env: [
      `ROOT=${root}`,
      `ACTION=${action}`,
      `SPECS=${mounts.map((m) => `${m.name}:${m.sizeMb}:${(m.folders ?? []).join(',')}`).join(' ')}`,
    ],
    Labels: { 'sandbot.instance': instance, 'sandbot.kind': 'quota-helper' },
    HostConfig: {
      Privileged: true,
      PidMode: 'host',
      NetworkMode: 'none',
      Binds: [`${root}:${root}`],
    },
  };
}

/** Runs the helper to its end; its output, or an error with it. */
async function runHelper(docker: Dockerode, spec: Dockerode.ContainerCreateOptions): Promise<string> {
  const container = await docker.createContainer(spec);
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = demuxLogs((await container.logs({ stdout: true, stderr: true })) as unknown as Buffer);
    if (StatusCode !== 0) {
      throw new Error(
        `the size-capped volume helper failed (exit ${StatusCode}): ${output.trim().slice(-500)}`,
      );
    }
    return output;
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** Formats (once) and mounts the images; returns each mount's path on the engine's host. */
export async function ensureEngineQuotaMounts(
  docker: Dockerode,
  image: string,
  instance: string,
  root: string,
  mounts: readonly EngineQuotaMount[],
): Promise<string[]> {
  await runHelper(docker, quotaHelperSpec(image, instance, root, 'ensure', mounts));
  return mounts.map((m) => `${root}/mnt/${m.name}`);
}

/** Unmounts and deletes the images; true when any existed. */
export async function removeEngineQuotaMounts(
  docker: Dockerode,
  image: string,
  instance: string,
  root: string,
  names: readonly string[],
): Promise<boolean> {
  const output = await runHelper(
    docker,
    quotaHelperSpec(
      image,
      instance,
      root,
      'remove',
      names.map((name) => ({ name, sizeMb: 0 })),
    ),
  );
  return /^removed /m.test(output);
}
