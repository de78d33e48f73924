/** A file of a skill: its path (posix, relative to the skill's folder) and the sha256 of its bytes. */
export interface FileHash {
  path: string;
  sha256: string;
}

/**
 * How the files seen differ from those expected, in words ("changed: a.sh; missing: b.md; added: c.sh");
 * empty when they are the same. `surplus` names the files seen but not expected: the skill store says
 * "added" (a folder that grew), the volume check "extra" (files a sandbox should not see).
 */
export function describeDifference(
  expected: readonly FileHash[],
  seen: readonly FileHash[],
  surplus: 'added' | 'extra' = 'added',
): string {
  const want = new Map(expected.map((d) => [d.path, d.sha256]));
  const have = new Map(seen.map((d) => [d.path, d.sha256]));
  const changed = [...want].filter(([p, h]) => have.has(p) && have.get(p) !== h).map(([p]) => p);
  const missing = [...want.keys()].filter((p) => !have.has(p));
  const unexpected = [...have.keys()].filter((p) => !want.has(p));
  return [
    changed.length ? `changed: ${changed.join(', ')}` : '',
    missing.length ? `missing: ${missing.join(', ')}` : '',
    unexpected.length ? `${surplus}: ${unexpected.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
}
