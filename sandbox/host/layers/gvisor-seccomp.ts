/**
 * The seccomp profile of gVisor sandboxes, applied by gVisor's own kernel to the agent's processes
 * (runsc needs --oci-seccomp for that). Under runc the engine's default profile refuses namespaces,
 * mounts and kernel-keyring/BPF calls to a process without capabilities; gVisor's kernel would allow
 * some of them (an unprivileged user namespace gives "root" inside gVisor), so they are refused here too.
 *
 * Engine's default profile cannot be used as is: it answers clone3 with ENOSYS through `errnoRet`,
 * which gVisor releases before 2023 ignore (EPERM instead), and glibc then fails to start any thread.
 * Here clone3 is answered by SCMP_ACT_TRACE, which without a tracer is ENOSYS, so glibc falls back to
 * clone, whose namespace flags are checked; ptrace is refused so that no tracer can exist.
 */

const CLONE_NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x0002_0000,
  CLONE_NEWCGROUP: 0x0200_0000,
  CLONE_NEWUTS: 0x0400_0000,
  CLONE_NEWIPC: 0x0800_0000,
  CLONE_NEWUSER: 0x1000_0000,
  CLONE_NEWPID: 0x2000_0000,
  CLONE_NEWNET: 0x4000_0000,
} as const;

/** Refused outright (EPERM): namespaces, mounts, keyrings, BPF, perf, userfaultfd, tracing. */
export const GVISOR_REFUSED_SYSCALLS = [
  'unshare',
  'setns',
  'mount',
  'umount2',
  'pivot_root',
  'chroot',
  'keyctl',
  'add_key',
  'request_key',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'ptrace',
] as const;

interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO' | 'SCMP_ACT_TRACE';
  args?: { index: number; value: number; valueTwo: number; op: 'SCMP_CMP_MASKED_EQ' }[];
}

/**
 * `tracing`: ptrace is allowed, for the skill vetting sandbox alone (src/worker/skills/behaviour/),
 * whose tracer (strace) watches the skill's tools; no conversation's sandbox gets it.
 */
export function gvisorSeccompProfile(options: { tracing?: boolean } = {}): {
  defaultAction: 'SCMP_ACT_ALLOW';
  syscalls: SeccompRule[];
} {
  const refused = GVISOR_REFUSED_SYSCALLS.filter((name) => !(options.tracing && name === 'ptrace'));
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: refused, action: 'SCMP_ACT_ERRNO' },
      { names: ['clone3'], action: 'SCMP_ACT_TRACE' },
      // One rule per flag: seccomp can test "these bits all set", not "any of these bits set".
      ...Object.values(CLONE_NAMESPACE_FLAGS).map(
        (flag): SeccompRule => ({
          names: ['clone'],
          action: 'SCMP_ACT_ERRNO',
          args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
        }),
      ),
    ],
  };
}

/** The engine's SecurityOpt entry carrying the profile (the API takes the JSON itself, not a path). */
export const gvisorSeccompOpt = (options: { tracing?: boolean } = {}): string =>
  `seccomp=${JSON.stringify(gvisorSeccompProfile(options))}`;
