import type { Config } from '../../contracts/config/schema.js';
import type { DoctorCheck } from '../../contracts/doctor/check.js';
import type { ModelBrokerError } from '../../worker/broker/errors.js';
import { modelBrokerFor } from '../../worker/broker/model-broker.js';

/**
 * `sandbot doctor` for SANDBOT_MODEL_PROVIDER=openai: does the OpenAI-compatible server at
 * SANDBOT_MODEL_URL answer (GET /models, with the API key), and does it serve SANDBOT_MODEL? The key
 * itself is never shown, only whether it is set.
 */

export const MODEL_SERVER_CHECK = 'Model server';

export async function checkOpenAIServerAndModel(
  config: Config,
  timeoutMs: number,
  names: { model: string },
): Promise<DoctorCheck[]> {
  const url = config.SANDBOT_MODEL_URL ?? '';
  const key = config.SANDBOT_MODEL_API_KEY !== undefined ? 'API key set' : 'no API key';
  const broker = modelBrokerFor(config, timeoutMs);
  const server = await broker.checkServer();
  if (!server.ok) {
    return [
      {
        name: MODEL_SERVER_CHECK,
        ok: false,
        detail: server.error.message,
        fix: serverFix(server.error, url),
      },
      {
        name: names.model,
        ok: false,
        detail: `not checked: the model server does not answer (${config.SANDBOT_MODEL})`,
      },
    ];
  }
  const ok = {
    name: MODEL_SERVER_CHECK,
    ok: true,
    detail: `${broker.describeServer(server.version)} at ${url} (${key})`,
  };
  const model = config.SANDBOT_MODEL;
  const found = await broker.checkModel(model);
  if (found.ok) return [ok, { name: names.model, ok: true, detail: `${model} is served` }];
  if (found.error.kind !== 'model_missing') {
    return [ok, { name: names.model, ok: false, detail: found.error.message }];
  }
  const served = found.pulled ?? [];
  return [
    ok,
    {
      name: names.model,
      ok: false,
      detail: `${found.error.message.replace(/: set SANDBOT_MODEL.*$/, '')} (it serves: ${served.join(', ') || 'no models'})`,
      fix:
        served.length > 0
          ? `set SANDBOT_MODEL to one of: ${served.join(', ')}; or start the server with ${model}`
          : `start the server with ${model} (e.g. \`vllm serve ${model}\`)`,
    },
  ];
}

function serverFix(error: ModelBrokerError, url: string): string {
  if (error.kind === 'unreachable' || error.kind === 'timeout') {
    return `start the OpenAI-compatible server (vLLM, llama-server, …), or set SANDBOT_MODEL_URL (${url}) to where it runs`;
  }
  if (error.kind === 'unauthorized') return 'set SANDBOT_MODEL_API_KEY to a key the server accepts';
  if (error.kind === 'rate_limited') return 'wait, or raise the server’s rate limit for this key';
  return `check that SANDBOT_MODEL_URL (${url}) is the base URL of an OpenAI-compatible API: GET ${url}/models must list models`;
}
