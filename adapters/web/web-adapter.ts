import type { AdapterDeps, ChatAdapter } from '../../src/gateway/chat-adapter.js';
import { WebEventStream } from './event-stream.js';
import { registerWebRoutes } from './http-routes.js';

/**
 * The web chat as a chat adapter: its routes on the gateway's HTTP server, its outbound events into a
 * Redis stream per conversation that the page's event stream reads.
 */
export function createWebAdapter(deps: AdapterDeps): ChatAdapter {
  const events = new WebEventStream(deps.redis, deps.config.SANDBOT_INSTANCE);
  return {
    platform: 'web',
    start: async () => undefined,
    stop: async () => undefined,
    deliver: async (event) => {
      await events.deliver(event);
    },
    health: () => ({ ok: true, detail: 'serving' }),
    registerRoutes(http) {
      const submitter = {
        submit: async (message: Parameters<AdapterDeps['submit']>[0]) => {
          await deps.submit(message);
        },
      };
      registerWebRoutes(
        http,
        { submitter, events, limits: deps.limits, schedules: deps.schedules, approvals: deps.approvals },
        { config: deps.config, logger: deps.logger },
      );
    },
  };
}
