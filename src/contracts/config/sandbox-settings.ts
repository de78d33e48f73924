import { z } from 'zod';
import { int } from './setting-fields.js';

/**
 * The settings of the sandboxes themselves (image, isolation layer, micro-VM, limits, disks, times and
 * the protocol), spread into the schema (schema.ts) in this order: the order is the docs' order.
 */
export const SANDBOX_SETTINGS = {
  SANDBOX_IMAGE: z.string().min(1).default('sandbot-sandbox:latest').describe('Image each sandbox runs.'),
  SANDBOX_LAYER: z
    .enum(['auto', 'container', 'gvisor', 'microvm'])
    .default('auto')
    .describe(
      'Isolation layer: container (runc or SANDBOX_RUNTIME), gvisor (every sandbox under runsc), microvm (every sandbox inside a QEMU guest built by `sandbot vm build`); auto = the strongest this host has: microvm with hardware virtualization and a built guest, else gvisor when runsc is registered, else container. A named layer is obeyed (no fallback).',
    ),
  SANDBOT_VM_DIR: z
    .string()
    .min(1)
    .default('./data/vm')
    .describe(
      'Micro-VM files: the built guest, its TLS keys, its data disk (images, volumes) and run state.',
    ),
  SANDBOT_VM_MEMORY_MB: int(256, 1_048_576).default(2048).describe('Micro-VM guest memory, MiB.'),
  SANDBOT_VM_CPUS: int(1, 256).default(2).describe('Micro-VM guest CPUs.'),
  SANDBOT_VM_DISK_MB: int(1024, 16_777_216)
    .default(16_384)
    .describe('Micro-VM data disk (images, sandbox volumes), MiB; a sparse file, created once.'),
  SANDBOT_VM_ACCEL: z
    .enum(['auto', 'kvm', 'tcg'])
    .default('auto')
    .describe(
      'Micro-VM acceleration: kvm (hardware), tcg (software emulation, slow), auto = kvm when the host CPU has vmx/svm and /dev/kvm.',
    ),
  SANDBOT_VM_BOOT_SECONDS: int(5, 3600)
    .default(300)
    .describe('How long starting the micro-VM may take until its engine answers.'),
  SANDBOX_RUNTIME: z
    .string()
    .optional()
    .describe('OCI runtime registered with the engine (e.g. runsc); default: the engine default (runc).'),
  SANDBOX_MEMORY_MB: int(32, 65_536).default(512).describe('Memory limit per sandbox, MiB.'),
  SANDBOX_CPUS: z.coerce.number().min(0.05).max(64).default(1).describe('CPU limit per sandbox, in cores.'),
  SANDBOX_PIDS: int(16, 65_536).default(256).describe('Process limit per sandbox.'),
  SANDBOX_TMP_MB: int(1, 4096).default(64).describe('Size of the tmpfs mounted at /tmp, MiB.'),
  SANDBOX_WORKSPACE_MB: int(0, 1_048_576)
    .default(2048)
    .describe(
      'Size cap of each /workspace, MiB: a loop-mounted ext4 image under SANDBOX_DISK_DIR (needs root on the engine host, else the worker refuses to start; under the micro-VM, in the guest on its data disk). 0: uncapped Docker volumes, reported as a weakness (doctor, worker start-up).',
    ),
  SANDBOX_SESSION_MB: int(1, 1_048_576)
    .default(64)
    .describe('Size cap of each /session (history), MiB (none when SANDBOX_WORKSPACE_MB=0).'),
  SANDBOX_DISK_DIR: z
    .string()
    .min(1)
    .default('./data/volumes')
    .describe(
      'Where size-capped volume images live (on the engine host; under the micro-VM the guest keeps them on its data disk instead).',
    ),
  SANDBOX_IDLE_SECONDS: int(10, 604_800)
    .default(600)
    .describe('Stop a sandbox after this long without a turn.'),
  SANDBOT_VOLUME_RETENTION_DAYS: int(0, 36_500)
    .default(30)
    .describe(
      'Remove a conversation’s sandbox and volumes after this many days without a turn (its audit file stays; 0: keep forever).',
    ),
  SANDBOX_TOOL_TIMEOUT_SECONDS: int(1, 3600).default(60).describe('Time limit of one tool call.'),
  SANDBOX_TOOL_OUTPUT_BYTES: int(256, 1_048_576).default(16_384).describe('Output kept from one tool call.'),
  SANDBOX_TURN_TIMEOUT_SECONDS: int(5, 86_400).default(600).describe('Wall time of one turn.'),
  SANDBOX_WORKSPACE_READ_MB: int(1, 65_536)
    .default(256)
    .describe(
      'Most one read of a sandbox’s files may stream, MiB (the audit’s /workspace snapshot, the outbox, a delegation copy; sparse files count at their apparent size): a file past it is listed by size and time, not read, and the read is cut there and recorded as cut.',
    ),
  SANDBOX_WORKSPACE_READ_SECONDS: int(1, 3600)
    .default(10)
    .describe('Most one read of a sandbox’s files may take; then it is cut and recorded as cut.'),
  SANDBOT_PROTOCOL_MAX_LINE_BYTES: int(65_536, 16_777_216)
    .default(1_048_576)
    .describe(
      'Longest protocol line either end accepts (the sandbox runtime is given the same cap; at least 64 KiB, for egress tunnel frames).',
    ),
  SANDBOT_PROTOCOL_BUFFER_BYTES: int(65_536, 1_073_741_824)
    .default(4_194_304)
    .describe(
      'Bytes of a sandbox’s output the worker holds before a turn listens (beyond that it is dropped and counted as bad lines): with the line cap, what one sandbox can make the worker keep.',
    ),
};
