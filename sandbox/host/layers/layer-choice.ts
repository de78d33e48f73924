import { GVISOR_RUNTIME, looksLikeGvisor, type SandboxLayer } from './layer.js';

/**
 * SANDBOX_LAYER=auto: the strongest layer this host can run, decided once at start from what a probe
 * found (layer-probe.ts does the looking). A named layer is taken as it is: the start-up check then
 * refuses it where it cannot run, and nothing falls back.
 */

/** What the host offers, as far as choosing goes. */
export type LayerProbe =
  | { setting: SandboxLayer }
  | {
      setting: 'auto';
      /** SANDBOX_RUNTIME, when set: it narrows which layers can honour it. */
      runtime?: string;
      /** Hardware virtualization for the micro-VM (emulation does not count), or why not. */
      hardware: { ok: boolean; detail: string };
      /** `sandbot vm build` has made the guest. */
      guestBuilt: boolean;
      /** The runtimes registered with the engine at DOCKER_HOST, or why it could not be asked. */
      runtimes: readonly string[] | { error: string };
    };

export type LayerChoice =
  | {
      ok: true;
      layer: SandboxLayer;
      /** Whether auto chose it (else SANDBOX_LAYER named it). */
      auto: boolean;
      /** Why this layer, in the operator's words. */
      reason: string;
    }
  | { ok: false; reason: string; fix: string };

export function chooseLayer(probe: LayerProbe): LayerChoice {
  if (probe.setting !== 'auto') {
    return { ok: true, layer: probe.setting, auto: false, reason: `SANDBOX_LAYER=${probe.setting}, as set` };
  }
  const noMicroVm = whyNoMicroVm(probe);
  if (!noMicroVm) {
    const reason = `${probe.hardware.detail} and the micro-VM guest is built`;
    return { ok: true, layer: 'microvm', auto: true, reason };
  }
  if ('error' in probe.runtimes) {
    return {
      ok: false,
      reason:
        `SANDBOX_LAYER=auto cannot choose: no micro-VM (${noMicroVm}), and the engine cannot be asked ` +
        `which runtimes it has: ${probe.runtimes.error}`,
      fix: 'start the container engine (see `sandbot doctor`), or name a layer in SANDBOX_LAYER',
    };
  }
  const gvisor = gvisorRuntime(probe.runtime);
  if (gvisor && probe.runtimes.includes(gvisor)) {
    const reason = `${gvisor} (gVisor) is registered with the engine; no micro-VM: ${noMicroVm}`;
    return { ok: true, layer: 'gvisor', auto: true, reason };
  }
  const noGvisor = gvisor
    ? `the engine has no runtime "${gvisor}" (\`bash scripts/setup.sh\` installs and registers runsc)`
    : `SANDBOX_RUNTIME=${probe.runtime} is not gVisor`;
  return {
    ok: true,
    layer: 'container',
    auto: true,
    reason: `no micro-VM (${noMicroVm}) and no gVisor (${noGvisor})`,
  };
}

/** The choice as one line: for logs, `sandbot doctor`, `sandbot vm status`. */
export function describeChoice(choice: LayerChoice): string {
  if (!choice.ok) return choice.reason;
  return choice.auto ? `${choice.layer}, chosen by SANDBOX_LAYER=auto: ${choice.reason}` : choice.reason;
}

/** Why auto does not take the micro-VM; undefined when it does. */
function whyNoMicroVm(probe: Extract<LayerProbe, { setting: 'auto' }>): string | undefined {
  if (!probe.hardware.ok) return `no hardware virtualization: ${probe.hardware.detail}`;
  if (!probe.guestBuilt) return 'its guest is not built (`sandbot vm build`)';
  // The guest's engine has runc only (worker-guest.ts, microvmRefusal).
  if (probe.runtime && probe.runtime !== 'runc') {
    return `SANDBOX_RUNTIME=${probe.runtime}, and the micro-VM's engine has runc only`;
  }
  return undefined;
}

/** The gVisor runtime auto looks for: SANDBOX_RUNTIME when it names gVisor, runsc when unset. */
function gvisorRuntime(runtime: string | undefined): string | undefined {
  if (!runtime) return GVISOR_RUNTIME;
  return looksLikeGvisor(runtime) ? runtime : undefined;
}
