import { createDocker } from '../../../../sandbox/host/driver/docker-client.js';
import { layerPlan, namedLayer } from '../../../../sandbox/host/layers/layer.js';
import { resolveLayer } from '../../../../sandbox/host/layers/layer-probe.js';
import type { Config } from '../../../contracts/config/schema.js';
import { type BehaviourReport, notRun } from './report.js';
import { runBehaviour, type VetSubject } from './run.js';
import { BEHAVIOUR_VERSION } from './version.js';

/** Runs a skill's tools in a vetting sandbox; never throws: a run that cannot happen is a `not-run` report. */
export type BehaviourRunner = (subject: VetSubject) => Promise<BehaviourReport>;

const PING_MS = 5_000;

/** The runner the settings describe: the engine at DOCKER_HOST, under the layer a worker would choose. */
export function behaviourRunnerFromConfig(config: Config): BehaviourRunner {
  return async (subject) => {
    try {
      const docker = createDocker(config.DOCKER_HOST);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PING_MS / 1000} s`)), PING_MS);
      });
      try {
        await Promise.race([docker.ping(), late]);
      } catch (error) {
        const where = config.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
        return notRun(
          BEHAVIOUR_VERSION,
          `the container engine at ${where} cannot be reached (${(error as Error).message})`,
        );
      } finally {
        clearTimeout(timer);
      }
      const resolved = await resolveLayer(config, docker);
      if (!resolved.ok) return notRun(BEHAVIOUR_VERSION, resolved.reason);
      const plan = layerPlan(namedLayer(resolved.config));
      if (plan.engine === 'guest') {
        return notRun(
          BEHAVIOUR_VERSION,
          'the micro-VM layer has no vetting sandbox yet (run it with SANDBOX_LAYER=gvisor)',
        );
      }
      const engine = { docker, instance: config.SANDBOT_INSTANCE, image: config.SANDBOX_IMAGE, plan };
      return await runBehaviour(
        { ...engine, cpus: config.SANDBOX_CPUS, tmpMb: config.SANDBOX_TMP_MB },
        subject,
      );
    } catch (error) {
      return notRun(BEHAVIOUR_VERSION, (error as Error).message);
    }
  };
}
