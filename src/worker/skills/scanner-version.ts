import { createHash } from 'node:crypto';
import { LINE_RULES } from './scan-rules.js';

/**
 * Which scanner a report came from. A skill scanned by another version is scanned again before it is
 * used or shown (`rescan.ts`), so rules added later reach skills approved earlier.
 *
 * The line rules are hashed; the parsed readers (parsed/) carry a revision number, raised whenever one
 * of them changes what it finds (test/unit/scanner-version.test.ts fails until it is raised).
 */
export const PARSED_READERS_REVISION = 1;

const rulesDigest = createHash('sha256')
  .update(
    JSON.stringify(
      LINE_RULES.map((r) => [r.id, r.severity, r.pattern.source, r.pattern.flags, r.parsedAway ?? []]),
    ),
  )
  .digest('hex')
  .slice(0, 12);

export const SCANNER_VERSION = `r${PARSED_READERS_REVISION}-${rulesDigest}`;
