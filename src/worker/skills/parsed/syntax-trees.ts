import { createRequire } from 'node:module';
import { Language, type Node, Parser } from 'web-tree-sitter';

/**
 * Syntax trees of a skill's scripts, for the scan to read what the code does rather than match lines.
 * tree-sitter's WebAssembly build parses shell, Python and JavaScript the same way on any host, with no
 * native build and no interpreter of the skill's language needed.
 */

export type ScriptLanguage = 'bash' | 'python' | 'javascript';

const GRAMMARS: Record<ScriptLanguage, string> = {
  bash: 'tree-sitter-bash/tree-sitter-bash.wasm',
  python: 'tree-sitter-python/tree-sitter-python.wasm',
  javascript: 'tree-sitter-javascript/tree-sitter-javascript.wasm',
};

const require = createRequire(import.meta.url);
let ready: Promise<void> | undefined;
const languages = new Map<ScriptLanguage, Promise<Language>>();

async function parserFor(language: ScriptLanguage): Promise<Parser> {
  ready ??= Parser.init();
  await ready;
  let loaded = languages.get(language);
  if (!loaded) {
    loaded = Language.load(require.resolve(GRAMMARS[language]));
    languages.set(language, loaded);
  }
  const parser = new Parser();
  parser.setLanguage(await loaded);
  return parser;
}

const BY_INTERPRETER: Record<string, ScriptLanguage> = {
  bash: 'bash',
  sh: 'bash',
  python3: 'python',
  node: 'javascript',
};

/** The language of a script: the manifest's interpreter, its name, or its #! line; else undefined. */
export function scriptLanguage(path: string, text: string, interpreter?: string): ScriptLanguage | undefined {
  if (interpreter && BY_INTERPRETER[interpreter]) return BY_INTERPRETER[interpreter];
  if (/\.(sh|bash|zsh|ksh)$/i.test(path)) return 'bash';
  if (/\.pyw?$/i.test(path)) return 'python';
  if (/\.(js|mjs|cjs)$/i.test(path)) return 'javascript';
  const shebang = /^#!\s*(?:\S*\/)?(?:env\s+(?:-\S+\s+)*)?(\S+)/.exec(text)?.[1] ?? '';
  if (/^(ba|z|k|da)?sh$/.test(shebang)) return 'bash';
  if (/^python[0-9.]*$/.test(shebang)) return 'python';
  if (/^(node|nodejs|bun|deno)$/.test(shebang)) return 'javascript';
  return undefined;
}

/** Parses a script and hands its root to `read`; the tree is freed after (it lives in WebAssembly memory). */
export async function withSyntaxTree<T>(
  language: ScriptLanguage,
  text: string,
  read: (root: Node) => T,
): Promise<T | undefined> {
  const parser = await parserFor(language);
  const tree = parser.parse(text);
  try {
    return tree ? read(tree.rootNode) : undefined;
  } finally {
    tree?.delete();
    parser.delete();
  }
}

/** 1-based line of a node. */
export const lineOf = (node: Node): number => node.startPosition.row + 1;

/** Every node under `root` (itself included), depth first, in source order. */
export function* walk(root: Node): Generator<Node> {
  const cursor = root.walk();
  try {
    let descending = true;
    for (;;) {
      if (descending) {
        yield cursor.currentNode;
        if (cursor.gotoFirstChild()) continue;
      }
      if (cursor.gotoNextSibling()) {
        descending = true;
        continue;
      }
      if (!cursor.gotoParent()) return;
      descending = false;
    }
  } finally {
    cursor.delete();
  }
}
