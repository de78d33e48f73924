import { describe, expect, it } from 'vitest';
import { GUEST_QUOTA_ROOT, quotaHelperSpec } from '../../sandbox/host/driver/engine-quota.js';
import { chooseAccel, cpuHasVirtualization } from '../../sandbox/host/vm/accel.js';
import { guestIsCurrent, inputsHash } from '../../sandbox/host/vm/build.js';
import { parseDockerdVersion, planSeed } from '../../sandbox/host/vm/data-disk.js';
import { chainIds, layersToSend } from '../../sandbox/host/vm/image-transfer.js';
import { vmPaths } from '../../sandbox/host/vm/paths.js';
import { qemuArgs } from '../../sandbox/host/vm/qemu-args.js';
import { microvmRefusal } from '../../sandbox/host/vm/worker-guest.js';
import { parseConfig } from '../../src/contracts/config/load.js';

const WITH_VMX = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx sse2\n';
const WITHOUT = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr sse2 hypervisor\n';

describe('micro-VM acceleration', () => {
  it('sees hardware virtualization only in the CPU flags', () => {
    expect(cpuHasVirtualization(WITH_VMX)).toBe(true);
    expect(cpuHasVirtualization(WITHOUT.replace('sse2', 'svm sse2'))).toBe(true);
    expect(cpuHasVirtualization(WITHOUT)).toBe(false);
    expect(cpuHasVirtualization('model name\t: vmx-like CPU\nflags\t\t: sse2\n')).toBe(false);
  });

  it('takes KVM on auto only with both /dev/kvm and vmx/svm, and says plainly when it emulates', () => {
    expect(chooseAccel('auto', true, WITH_VMX).accel).toBe('kvm');
    const pvm = chooseAccel('auto', true, WITHOUT);
    expect(pvm.accel).toBe('tcg');
    expect(pvm.reason).toContain('no vmx/svm');
    expect(pvm.reason).toMatch(/boot of \d+–\d+ s/);
    expect(chooseAccel('auto', false, WITH_VMX)).toMatchObject({ accel: 'tcg' });
    expect(chooseAccel('tcg', true, WITH_VMX).accel).toBe('tcg');
    expect(() => chooseAccel('kvm', false, WITH_VMX)).toThrow(/\/dev\/kvm/);
  });
});

describe('the QEMU command line', () => {
  const args = qemuArgs({
    paths: vmPaths('/srv/vm'),
    accel: 'tcg',
    memoryMb: 1024,
    cpus: 2,
    hostPort: 40000,
    user: 'sandbot-vm',
  });
  const flagValues = (flag: string) => args.filter((_, i) => args[i - 1] === flag);

  it('closes the guest network and forwards only the engine port, on the loopback', () => {
    const [netdev] = flagValues('-netdev');
    expect(netdev).toContain('restrict=on');
    expect(netdev).toMatch(/hostfwd=tcp:127\.0\.0\.1:40000-10\.0\.2\.15:2376$/);
    expect(netdev?.match(/hostfwd/g)).toHaveLength(1);
  });

  it('mounts the root disk read-only, keeps the data disk writable, and sandboxes QEMU itself', () => {
    const drives = flagValues('-drive');
    expect(drives.find((d) => d.includes('id=root'))).toContain('readonly=on');
    expect(drives.find((d) => d.includes('id=data'))).not.toContain('readonly');
    expect(flagValues('-append')[0]).toMatch(/root=\/dev\/vda ro /);
    expect(flagValues('-sandbox')[0]).toMatch(/^on,.*spawn=deny/);
    expect(flagValues('-runas')).toEqual(['sandbot-vm']);
    expect(args).toContain('-nodefaults');
    expect(flagValues('-accel')).toEqual(['tcg,thread=multi']);
    expect(flagValues('-smp')).toEqual(['2']);
  });

  it('uses the host CPU under KVM', () => {
    const kvm = qemuArgs({
      paths: vmPaths('/srv/vm'),
      accel: 'kvm',
      memoryMb: 512,
      cpus: 1,
      hostPort: 1,
      user: 'sandbot-vm',
    });
    expect(kvm[kvm.indexOf('-accel') + 1]).toBe('kvm');
    expect(kvm[kvm.indexOf('-cpu') + 1]).toBe('host');
  });
});

describe('the guest build cache', () => {
  const a = [
    { name: 'guest-init.sh', content: 'echo a' },
    { name: 'tls/ca.pem', content: 'CA' },
  ];

  it('hashes names and contents, in any order', () => {
    expect(inputsHash(a)).toBe(inputsHash([...a].reverse()));
    expect(inputsHash(a)).not.toBe(inputsHash([{ ...a[0]!, content: 'echo b' }, a[1]!]));
    // Moving bytes from one file into another changes it.
    expect(
      inputsHash([
        { name: 'x', content: 'ab' },
        { name: 'y', content: '' },
      ]),
    ).not.toBe(
      inputsHash([
        { name: 'x', content: 'a' },
        { name: 'y', content: 'b' },
      ]),
    );
  });

  it('is current only when every artefact exists and the recorded hash matches', () => {
    expect(guestIsCurrent(true, 'abc\n', 'abc')).toBe(true);
    expect(guestIsCurrent(false, 'abc', 'abc')).toBe(false);
    expect(guestIsCurrent(true, undefined, 'abc')).toBe(false);
    expect(guestIsCurrent(true, 'abd', 'abc')).toBe(false);
  });
});

describe('seeding the data disk on the host', () => {
  const facts = {
    root: true,
    hostEngineVersion: '20.10.24',
    guestEngineVersion: '20.10.24',
    imageOnHost: true,
  };

  it('seeds only as root, with the image, and an engine of the guest’s exact version', () => {
    expect(planSeed(facts)).toEqual({ seed: true });
    expect(planSeed({ ...facts, root: false })).toMatchObject({ seed: false, reason: /root/ });
    expect(planSeed({ ...facts, imageOnHost: false })).toMatchObject({ seed: false });
    expect(planSeed({ ...facts, hostEngineVersion: undefined })).toMatchObject({ seed: false });
    expect(planSeed({ ...facts, hostEngineVersion: '27.1.0' })).toMatchObject({
      seed: false,
      reason: /27\.1\.0/,
    });
  });

  it('reads dockerd’s version line', () => {
    expect(parseDockerdVersion('Docker version 20.10.24+dfsg1, build 5d6db84\n')).toBe('20.10.24+dfsg1');
    expect(parseDockerdVersion('nonsense')).toBeUndefined();
  });
});

describe('what the micro-VM layer refuses', () => {
  const config = (env: Record<string, string>) => parseConfig({ SANDBOX_LAYER: 'microvm', ...env });

  it('refuses other runtimes, with what to do; size-capped volumes are made in the guest', () => {
    expect(microvmRefusal(config({}))).toBeUndefined();
    expect(microvmRefusal(config({ SANDBOX_RUNTIME: 'runc' }))).toBeUndefined();
    expect(microvmRefusal(config({ SANDBOX_WORKSPACE_MB: '100' }))).toBeUndefined();
    expect(microvmRefusal(config({ SANDBOX_RUNTIME: 'runsc' }))).toMatch(/runc only/);
  });

  it('has settings for memory, CPUs, disk and acceleration', () => {
    const parsed = config({ SANDBOT_VM_MEMORY_MB: '1024', SANDBOT_VM_CPUS: '1', SANDBOT_VM_ACCEL: 'tcg' });
    expect(parsed).toMatchObject({ SANDBOT_VM_MEMORY_MB: 1024, SANDBOT_VM_CPUS: 1, SANDBOT_VM_ACCEL: 'tcg' });
    expect(parsed.SANDBOT_VM_DIR).toBe('./data/vm');
    expect(() => config({ SANDBOT_VM_ACCEL: 'hvf' })).toThrow();
  });
});

describe('sending an image to the guest', () => {
  it('sends only the layers whose chain the guest lacks', () => {
    const [a, b, c] = ['sha256:aa', 'sha256:bb', 'sha256:cc'];
    const chains = chainIds([a!, b!, c!]);
    expect(chains[0]).toBe(a);
    expect(new Set(chains).size).toBe(3);
    // The same diff on another parent is another chain.
    expect(chainIds([c!, b!])[1]).not.toBe(chains[1]);
    expect(layersToSend([a!, b!, c!], new Set(chains.slice(0, 2)))).toEqual([false, false, true]);
    expect(layersToSend([a!, b!], new Set())).toEqual([true, true]);
  });
});

describe('size-capped volumes in the guest', () => {
  it('runs sandbot’s helper unprivileged (CAP_SYS_ADMIN, loop devices), in its own PID namespace, arguments in its environment', () => {
    const spec = quotaHelperSpec('img', 'prod', GUEST_QUOTA_ROOT, 'ensure', [
      { name: 'prod-ws-abc', sizeMb: 64, folders: ['inbox', 'outbox'] },
      { name: 'prod-sess-abc', sizeMb: 32 },
    ]);
    expect(spec.HostConfig).toEqual({
      CapDrop: ['ALL'],
      CapAdd: ['SYS_ADMIN', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER'],
      SecurityOpt: ['apparmor=unconfined', 'no-new-privileges'],
      DeviceCgroupRules: ['b 7:* rwm', 'c 10:237 rwm'],
      NetworkMode: 'none',
      Binds: ['/dev:/dev', `${GUEST_QUOTA_ROOT}:${GUEST_QUOTA_ROOT}:rw,rshared`],
    });
    // Never the host's PID namespace, and nothing done inside a mounted volume: the folders are
    // written into the image at format time (mkfs -d), the only chown is of the helper's own seed.
    const script = (spec.Entrypoint as string[])[2] as string;
    expect(script).not.toMatch(/nsenter|PidMode/);
    expect(script).toMatch(/mkfs\.ext4 .*-d "\$seed"/);
    expect(script.match(/chown[^\n]*/g)).toEqual(['chown -R 1000:1000 "$seed"']);
    expect(spec.Env).toEqual([
      `ROOT=${GUEST_QUOTA_ROOT}`,
      'ACTION=ensure',
      'SPECS=prod-ws-abc:64:inbox,outbox prod-sess-abc:32:',
    ]);
    expect(spec.Labels).toEqual({ 'sandbot.instance': 'prod', 'sandbot.kind': 'quota-helper' });
  });

  it('refuses names that are not sandbot’s volume names (nothing reaches its shell)', () => {
    for (const name of ['../etc', 'a b', 'x;reboot', '$(id)', '']) {
      expect(() => quotaHelperSpec('img', 'prod', GUEST_QUOTA_ROOT, 'remove', [{ name, sizeMb: 0 }])).toThrow(
        /not a volume sandbot makes/,
      );
    }
  });
});
