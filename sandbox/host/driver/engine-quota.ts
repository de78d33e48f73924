import type Dockerode from 'dockerode';
import { demuxLogs } from '../layers/layer-check.js';

/**
 * Size-capped volumes on an engine whose host the worker cannot reach but through the engine itself
 * (the micro-VM's guest): the same ext4 images and loop mounts as disk-quota.ts, made by a short-lived
 * helper container of the sandbox image (root with CAP_SYS_ADMIN and the loop devices; not privileged). It formats the image files under `root` (bound at
 * the same path, with shared propagation) and mounts them there: the mounts propagate to the engine
 * host's own mount namespace, where the sandboxes' bind mounts then find them. So the helper needs
 * neither the host's PID namespace nor nsenter; Docker keeps its data root (/var/lib/docker, where the
 * guest's images live) on a shared mount, which a shared bind needs.
 *
 * Trusted code only: the helper runs sandbot's own script, never anything of an agent's, and is gone
 * before the sandbox starts. It never looks inside a mounted volume (an agent's files, links included):
 * the folders a new volume holds are written into the image when it is formatted (mkfs -d), before any
 * agent ran, and never touched again.
 */
export interface EngineQuotaMount {
  name: string;
  sizeMb: number;
  /** Folders made (owned by the agent) at the top of a new file system. */
  folders?: string[];
}

// Arguments arrive in the environment (ROOT, SPECS "name:size:folder,folder …", ACTION), never in the
// script's text. Each image is formatted and mounted under a lock, so concurrent opens do it once.
// A new image is a new sparse file, so its journal reads as zeros: mkfs need not write them
// (lazy_journal_init; as disk-quota.ts).
const SCRIPT = `set -eu
mkdir -p "$ROOT/mnt"
for spec in $SPECS; do
  name=$(echo "$spec" | cut -d: -f1); size=$(echo "$spec" | cut -d: -f2); folders=$(echo "$spec" | cut -d: -f3)
  img="$ROOT/$name.img"; mnt="$ROOT/mnt/$name"
  (
    flock 9
    if [ "$ACTION" = remove ]; then
      if mountpoint -q "$mnt"; then umount -l "$mnt"; fi
      rmdir "$mnt" 2>/dev/null || true
      if [ -e "$img" ]; then echo "removed $name"; fi
      rm -f "$img" "$img.ready"
    else
      if [ ! -e "$img.ready" ]; then
        seed=$(mktemp -d)
        for f in $(echo "$folders" | tr , " "); do mkdir "$seed/$f"; done
        chown -R 1000:1000 "$seed"
        rm -f "$img"; truncate -s "$size"M "$img"
        mkfs.ext4 -q -F -E root_owner=1000:1000,lazy_journal_init=1 -d "$seed" "$img"
        rm -rf "$seed"
        : > "$img.ready"
      fi
      mkdir -p "$mnt"
      mountpoint -q "$mnt" || mount -o loop,nosuid,nodev "$img" "$mnt"
      echo "mounted $name"
    fi
  ) 9>"$img.lock"
  if [ "$ACTION" = remove ]; then rm -f "$img.lock"; fi
done
`;

/** Where the micro-VM's guest keeps capped volumes: on its data disk (mounted at /var/lib/docker). */
export const GUEST_QUOTA_ROOT = '/var/lib/docker/sandbot-quota';

const NAME = /^[a-z0-9][a-z0-9-]*$/;

/**
 * The helper container's spec (pure): what it may touch is `root`, whose mounts it shares with the
 * engine's host; it runs in its own PID namespace (so no nsenter into the host's) without a network.
 */
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
      // Not privileged: mount(2) needs CAP_SYS_ADMIN, and the engine's device rules open only the loop
      // devices (block major 7) and /dev/loop-control to it, through the host's /dev. The engine's seccomp
      // profile stays on; no LSM profile of the engine's would let a container mount.
      CapDrop: ['ALL'],
      CapAdd: ['SYS_ADMIN', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER'],
      SecurityOpt: ['apparmor=unconfined', 'no-new-privileges'],
      DeviceCgroupRules: ['b 7:* rwm', 'c 10:237 rwm'],
      NetworkMode: 'none',
      // Binds (not Mounts entries), so the engine makes `root` when it is missing.
      Binds: ['/dev:/dev', `${root}:${root}:rw,rshared`],
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
