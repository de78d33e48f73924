import type { RuleId, Severity } from './scan-rules.js';

/** One thing the static scan found in a skill: which rule, how bad, where, and why in words. */
export interface Finding {
  rule: RuleId;
  severity: Severity;
  file: string;
  /** 1-based line, when the finding is on one. */
  line?: number;
  /** The line (trimmed, shortened). */
  excerpt?: string;
  message: string;
}
