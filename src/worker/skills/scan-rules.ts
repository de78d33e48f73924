/**
 * The static scan's line rules: patterns for what skill-registry malware does (reading credentials and
 * the environment, piping downloads or decoded blobs into a shell, writing outside the workspace,
 * planting persistence). A rule errs on the side of a finding: the admin reads the report and decides.
 */

import type { ScriptLanguage } from './parsed/syntax-trees.js';

export type Severity = 'critical' | 'warning';
export const RULE_IDS = [
  'binary',
  'credentials',
  'environment',
  'undeclared-host',
  'pipe-to-shell',
  'dropper',
  'obfuscation',
  'write-outside',
  'persistence',
  'broad-host',
  'dynamic-host',
  'unix-socket',
  'shell-command',
  'resource-abuse',
] as const;
export type RuleId = (typeof RULE_IDS)[number];

export interface LineRule {
  id: RuleId;
  severity: Severity;
  /** Tested against each logical line (continuations joined). */
  pattern: RegExp;
  message: string;
  /** Scripts in these languages are read through their syntax tree for this instead. */
  parsedAway?: readonly ScriptLanguage[];
}

const SHELL = String.raw`(?:sudo\s+)?(?:ba|z|da|k|fi)?sh\b`;
const FETCH = String.raw`\b(?:curl|wget|fetch|aria2c|http)\b`;
const HOME = String.raw`(?:~|\$HOME|\$\{HOME\}|/root|/home/[^/\s'"]+)`;
/** Paths a skill may write: the workspace, temp space and the null/std devices. */
const ALLOWED_WRITE = String.raw`(?!/workspace(?:/|\b)|/tmp(?:/|\b)|/dev/(?:null|stdout|stderr|fd/)|/proc/self/fd/)`;
const OUTSIDE_PATH = String.raw`(?:${ALLOWED_WRITE}/[^\s'";|&)<>]+|${HOME}[^\s'";|&)<>]*)`;
const SECRET_NAME =
  '[A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)[A-Z0-9_]*';

export const LINE_RULES: readonly LineRule[] = [
  // Credentials on disk.
  {
    id: 'credentials',
    severity: 'critical',
    pattern:
      /(^|[^A-Za-z0-9_-])\.(aws|ssh|gnupg|kube|docker|azure|netrc|npmrc|pypirc|git-credentials|pgpass|boto|s3cfg)([/'"`\s)]|$)/,
    message: 'reads a credentials location (~/.aws, ~/.ssh, ~/.kube, ~/.netrc …)',
  },
  {
    id: 'credentials',
    severity: 'critical',
    pattern:
      /\b(id_rsa|id_ed25519|id_ecdsa|id_dsa|credentials\.json|service[-_]account.*\.json|\.config\/(gcloud|gh)|\/etc\/shadow|\/var\/run\/secrets|\/run\/secrets|wallet\.dat|Login Data|keychain)\b/i,
    message: 'reads keys, cloud or browser credentials',
  },
  {
    id: 'credentials',
    severity: 'critical',
    pattern: /(^|[\s'"`(=/])\.env(\.[A-Za-z]+)?(['"`\s)]|$)/,
    message: 'reads a .env file (where secrets are usually kept)',
  },
  // The environment, whole or its secrets.
  {
    id: 'environment',
    severity: 'critical',
    pattern: /\/proc\/(self|\d+|\$\$|\*)\/environ\b/,
    message: 'reads a process environment from /proc',
  },
  {
    id: 'environment',
    severity: 'critical',
    pattern:
      /\bprintenv\b|(^|[;&|`(]|\$\(|\s)env\s*($|[|>;&)`])|\bexport\s+-p\b|(^|[;&|\s])set\s*\||\bcompgen\s+-v\b|\bdeclare\s+-x?p\b/,
    message: 'dumps the environment (env, printenv, set, export -p)',
  },
  {
    id: 'environment',
    severity: 'critical',
    pattern:
      /(JSON\.stringify|Object\.(keys|entries|values|assign))\s*\(\s*(\{\s*\.\.\.)?process\.env\b|\.\.\.process\.env\b|\bos\.environ\s*(\)|\.copy\(\)|\.items\(\)|\.keys\(\)|\.values\(\)|$|[,;\]}])|\bdict\(\s*os\.environ\b|\bENV\.(to_h|to_a|each)\b/,
    message: 'reads the whole environment (process.env, os.environ)',
    // The syntax tree tells `env=os.environ` (handed to a child) from a read of it; the line cannot.
    parsedAway: ['python', 'javascript'],
  },
  {
    id: 'environment',
    severity: 'critical',
    pattern: new RegExp(
      String.raw`\$\{?${SECRET_NAME}\b|process\.env(\.|\[['"\x60])${SECRET_NAME}|(environ(\.get)?|getenv)\s*[([]\s*['"]${SECRET_NAME}`,
    ),
    message: 'reads a secret-looking environment variable (…TOKEN, …SECRET, …KEY, …PASSWORD)',
  },
  // Downloads run as code.
  {
    id: 'pipe-to-shell',
    severity: 'critical',
    pattern: new RegExp(
      String.raw`${FETCH}[^\n|]*\|\s*(${SHELL}|(?:sudo\s+)?(python[23]?|node|perl|ruby|php)\b)|${SHELL}\s+<\(\s*${FETCH}|(source|\.)\s+<\(\s*${FETCH}|${SHELL}\s+-c\s+["']?\$\(\s*${FETCH}|\beval\s+["']?\$\(\s*${FETCH}`,
    ),
    message: 'runs downloaded code (curl … | sh and the like)',
  },
  {
    id: 'pipe-to-shell',
    severity: 'critical',
    pattern:
      /\bexec\s*\(\s*(urllib|requests|urlopen|http)|\beval\s*\(\s*await\s+fetch|new\s+Function\s*\(\s*await/,
    message: 'runs code fetched over the network',
  },
  // Encoded payloads run as code.
  {
    id: 'dropper',
    severity: 'critical',
    pattern: new RegExp(
      String.raw`(base64|b64|xxd|openssl|uudecode|rev|gunzip|zcat)\b[^\n|]*\|\s*(${SHELL}|(?:sudo\s+)?(python[23]?|node|perl)\b)|\b(eval|exec|source)\s+["']?\$\([^)]*\b(base64|xxd)\b|\b(exec|eval)\s*\(\s*(compile\s*\()?\s*(base64\.)?(b64decode|b32decode|a85decode|decodebytes|zlib\.decompress|marshal\.loads|codecs\.decode)|\b(eval|Function)\s*\(\s*(atob|Buffer\.from|unescape|decodeURIComponent)\s*\(`,
    ),
    message: 'decodes a payload and runs it (a dropper: base64 … | sh, eval(atob(…)), exec(b64decode(…)))',
  },
  {
    id: 'obfuscation',
    severity: 'warning',
    pattern: /[A-Za-z0-9+/]{200,}={0,2}/,
    message: 'holds a long base64-like blob',
  },
  {
    id: 'obfuscation',
    severity: 'warning',
    pattern: /(\\x[0-9a-fA-F]{2}){16,}|(\\u[0-9a-fA-F]{4}){16,}|(%[0-9a-fA-F]{2}){24,}|(\\[0-7]{3}){16,}/,
    message: 'holds a long escaped byte string',
  },
  {
    id: 'obfuscation',
    severity: 'warning',
    pattern:
      /\beval\s+["']?\$|\beval\s*\(|\bnew\s+Function\s*\(|\bexec\s*\(\s*compile\b|String\.fromCharCode\s*\((\s*\d+\s*,){8,}|\bchr\(\d+\)\s*\+\s*chr\(/,
    message: 'evaluates code built at run time (eval, new Function, char codes)',
  },
  // Writes outside /workspace and /tmp.
  {
    id: 'write-outside',
    severity: 'critical',
    pattern: new RegExp(
      String.raw`(^|[^<=&-])>>?\|?\s*["']?${OUTSIDE_PATH}|\btee\s+(-a\s+|--append\s+)?["']?${OUTSIDE_PATH}|\b(cp|mv|install|rsync|ln)\b[^\n;|&]*\s["']?${OUTSIDE_PATH}["']?\s*($|[;|&])|\bdd\b[^\n]*\bof=["']?${OUTSIDE_PATH}`,
    ),
    message: 'writes outside /workspace and /tmp (redirect, tee, cp/mv, dd)',
  },
  {
    id: 'write-outside',
    severity: 'critical',
    pattern: new RegExp(
      String.raw`\b(writeFile|writeFileSync|appendFile|appendFileSync|createWriteStream|openSync|mkdirSync|copyFileSync|renameSync|symlinkSync)\s*\(\s*['"\x60]${OUTSIDE_PATH}|\bopen\s*\(\s*['"]${OUTSIDE_PATH}['"]\s*,\s*['"][^'"]*[wax+]|\bPath\s*\(\s*['"]${OUTSIDE_PATH}['"]\s*\)\.(write_text|write_bytes|open|mkdir|touch|symlink_to)\b|\b(shutil\.(copy|copyfile|copy2|move)|os\.(rename|replace|symlink))\s*\([^)]*['"]${OUTSIDE_PATH}`,
    ),
    message: 'writes files outside /workspace and /tmp from code',
  },
  // The container engine's socket, or any other host socket, from any language.
  {
    id: 'unix-socket',
    severity: 'critical',
    pattern:
      /\bdocker\.sock\b|\/var\/run\/[\w.-]+\.sock\b|\/run\/[\w./-]+\.sock\b|--unix-socket\b|\bAF_UNIX\b|\bsocketPath\s*:|\bUNIX-CONNECT:/,
    message:
      'opens a unix socket (the container engine’s docker.sock and the like): a way out of the sandbox',
  },
  {
    id: 'resource-abuse',
    severity: 'critical',
    pattern: /(\w+|:)\s*\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}\s*;\s*\1\b|\bwhile\b[^\n]*\bos\.fork\(/,
    message: 'starts a fork bomb',
  },
  // Persistence.
  {
    id: 'persistence',
    severity: 'critical',
    pattern:
      /\bcrontab\b|\/etc\/cron|\/var\/spool\/cron|\bat\s+now\b|\bsystemctl\s+(--user\s+)?enable\b|\.config\/systemd|\/etc\/systemd|\/etc\/init\.d|\/etc\/rc\.local|\/etc\/profile|\/etc\/ld\.so\.preload|\bLD_PRELOAD\b|\bauthorized_keys\b|\bPROMPT_COMMAND\b|\bBASH_ENV\b|\bNODE_OPTIONS\s*=|\.git\/hooks\b|\bcore\.hooksPath\b|\b(sitecustomize|usercustomize)\.py\b/,
    message: 'plants persistence (cron, systemd, preload, SSH keys, hooks, start-up files)',
  },
  {
    id: 'persistence',
    severity: 'critical',
    pattern:
      /(^|[^A-Za-z0-9_])\.(bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv|zlogin|inputrc)\b/,
    message: 'touches shell start-up files (.bashrc, .profile …), which run on every shell',
  },
  {
    id: 'persistence',
    severity: 'warning',
    pattern: /\bnohup\b|\bdisown\b|\bsetsid\b|\bdaemon(ize)?\s*\(|\bscreen\s+-d|\btmux\s+new\b/,
    message: 'starts a process meant to outlive the tool call',
  },
];

/** Text files that document rather than run: a host named there is a warning, not critical. */
export function isDocument(path: string): boolean {
  return /\.(md|markdown|txt|rst|adoc)$/i.test(path);
}
