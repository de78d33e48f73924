import type { HostToolName } from '../../contracts/protocol/host-tools.js';
import type { HostCall, HostTools } from './host-tool-relay.js';

/**
 * Several host tools as one (`delegate` from delegation, `request_access` from approvals): each offers
 * its own, and a call goes to the one that owns its name. The ledger in the relay still decides whether
 * the model made the call at all.
 */
export function hostToolSet(owners: Partial<Record<HostToolName, HostTools>>): HostTools {
  const distinct = [...new Set(Object.values(owners))];
  return {
    async offered(turn) {
      const offers = await Promise.all(distinct.map((tools) => tools.offered(turn).catch(() => [])));
      return offers.flat();
    },
    run(call: HostCall) {
      const owner = owners[call.name];
      if (!owner) return Promise.resolve({ ok: false, output: `${call.name} is not available here` });
      return owner.run(call);
    },
  };
}
