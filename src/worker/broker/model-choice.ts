/**
 * When the fallback model (SANDBOT_MODEL_FALLBACK) answers instead of the chosen one, and the words
 * the user and the audit get about it. Pure: routed-broker.ts carries it out.
 */

/** What to do after the chosen model failed a request. */
export type AfterFailure = 'retry' | 'fallback' | 'give_up';

/** A chosen model that is not there or too slow gets no second try: waiting again would not help. */
const AT_ONCE = new Set(['model_missing', 'timeout']);
/** Nothing a different model changes: the turn ended, or the server turned the request away as such. */
const NEVER = new Set(['cancelled']);

/**
 * `failures` is how many times the chosen model already failed this request (before this failure).
 * Any other failure (server errors, unreadable answers, kinds added later) counts: twice in a row and
 * the fallback answers. Without a fallback nothing changes: the first error is the answer, as before.
 */
export function afterFailure(kind: string, failures: number, hasFallback: boolean): AfterFailure {
  if (!hasFallback || NEVER.has(kind)) return 'give_up';
  if (AT_ONCE.has(kind) || failures >= 1) return 'fallback';
  return 'retry';
}

/**
 * A chosen model that timed out is passed over for this long: its next requests go to the fallback at
 * once instead of each waiting out the time limit first (a turn makes many). Cheap failures (a missing
 * model's 404, a server error) are asked again every time, so a model pulled meanwhile answers at once.
 */
export const PASS_OVER_MS = 60_000;

/** Whether a failure makes the chosen model passed over for a while (see PASS_OVER_MS). */
export function passesOver(kind: string): boolean {
  return kind === 'timeout';
}

/** The fallback to use for a request to `chosen`, if any (a rule may choose the fallback itself). */
export function fallbackFor(chosen: string, fallback: string | undefined): string | undefined {
  return fallback && fallback !== chosen ? fallback : undefined;
}

/** Why the chosen model did not answer, short, for the reply's note. */
export function unavailableReason(kind: string, failures: number): string {
  if (kind === 'model_missing') return 'it is not installed on the model server';
  if (kind === 'timeout') return 'it did not answer in time';
  return failures >= 2 ? 'it failed twice in a row' : 'it failed';
}

/** The note appended to a reply the fallback wrote. */
export function fallbackNote(answeredBy: string, chosen: string, reason: string): string {
  return `(Answered by ${answeredBy}: ${chosen} was unavailable, ${reason}.)`;
}

/** Neither model answered: both named, each with its error. */
export function bothFailedMessage(
  chosen: { model: string; error: string },
  fallback: { model: string; error: string },
): string {
  return `Neither model could answer. ${chosen.model}: ${chosen.error}. The fallback ${fallback.model}: ${fallback.error}.`;
}
