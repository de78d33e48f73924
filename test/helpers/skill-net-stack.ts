import type Dockerode from 'dockerode';
import type { Config } from '../../src/contracts/config/schema.js';
import type { EgressRecord } from '../../src/worker/egress/proxy.js';
import { type FakeScript, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { startOutsideHost } from '../../testkit/outside-host.js';
import { removeSkillVolumes, skillsDir } from './skill-stack.js';
import { startStack } from './stack.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * A test stack whose every name resolves to one outside host on a network of its own, for skills
 * reaching hosts through the egress proxy; every egress decision is kept in `records`.
 */
export class SkillNetStack {
  readonly records: EgressRecord[] = [];
  private outside: Awaited<ReturnType<typeof startOutsideHost>> | undefined;
  private ollama: Awaited<ReturnType<typeof startFakeOllama>> | undefined;
  private stack: Stack | undefined;

  constructor(
    private readonly config: Config,
    private readonly docker: Dockerode,
  ) {}

  /** `prepare` runs once the skills folder and the model are set (to vet and enable skills). */
  async start(options: {
    name: string;
    subnet: string;
    address: string;
    script: FakeScript;
    prepare: () => Promise<unknown>;
  }): Promise<void> {
    Object.assign(this.config, { SANDBOT_SKILLS_DIR: await skillsDir() });
    const { name, subnet, address } = options;
    this.outside = await startOutsideHost(this.docker, { name, subnet, address });
    this.ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: options.script });
    Object.assign(this.config, { OLLAMA_HOST: this.ollama.url });
    await options.prepare();
    this.stack = await startStack(this.config, {
      lookup: async () => [{ address, family: 4 }],
      onEgress: (entry) => this.records.push(entry),
    });
  }

  get url(): string {
    if (!this.stack) throw new Error('the stack did not start');
    return this.stack.url;
  }

  /** The port the outside host listens on. */
  get outsidePort(): number {
    if (!this.outside) throw new Error('the outside host did not start');
    return this.outside.port;
  }

  async stop(): Promise<void> {
    await this.stack?.stop();
    await this.ollama?.close();
    await this.outside?.stop();
    await cleanInstance(this.config);
    await removeSkillVolumes(this.docker, this.config.SANDBOT_INSTANCE);
  }
}
