/** Why a running turn is being ended from outside: a user's `stop`, or a kill (admin or tripwire). */
export type StopReason = { kind: 'stop'; by: string } | { kind: 'kill'; by: string; reason: string };

export function stopReasonOf(signal: AbortSignal): StopReason {
  const reason = signal.reason as StopReason | undefined;
  return reason && typeof reason === 'object' && 'kind' in reason ? reason : { kind: 'stop', by: '' };
}

/** What the channel reads when a turn is stopped or killed. */
export function stopNotice(reason: StopReason): string {
  if (reason.kind === 'kill') {
    return `Killed (${reason.reason}; by ${reason.by}). This conversation is quarantined until an admin releases it.`;
  }
  return `Stopped${reason.by ? ` (asked by ${reason.by})` : ''}.`;
}
