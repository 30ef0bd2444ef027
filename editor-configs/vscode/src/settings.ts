// Pure translation from the extension's `codegemma.*` settings to what the
// server is started with and told. No `vscode` import, so node's test runner
// can exercise it directly (see src/test/settings.test.ts).

import * as path from "node:path";

/** The setting sections the server understands (codegemma_lsp/config.py). */
export const SERVER_SECTIONS: readonly string[] = ["model", "fim", "completion", "generate", "log"];

export const DEFAULT_COMMAND: readonly string[] = ["codegemma-lsp"];

/** The languages the server has grammars for, as VS Code names them. */
export const LANGUAGES: readonly string[] = [
  "python",
  "javascript",
  "javascriptreact",
  "typescript",
  "typescriptreact",
  "go",
  "java",
  "c",
  "cpp",
  "csharp",
  "kotlin",
  "rust",
];

export const SCHEMES: readonly string[] = ["file", "untitled"];

export interface DocumentFilter {
  language: string;
  scheme: string;
}

export function documentSelector(): DocumentFilter[] {
  return LANGUAGES.flatMap((language) => SCHEMES.map((scheme) => ({ language, scheme })));
}

/** The subset of `WorkspaceConfiguration.inspect()` that says where a value was set. */
export interface InspectedValue {
  defaultValue?: unknown;
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

export type Inspect = (key: string) => InspectedValue | undefined;

export type ServerSettings = Record<string, Record<string, unknown>>;

/**
 * The values the user set for the server's sections, nested as the server reads them.
 *
 * `keys` are the contributed setting names without the `codegemma.` prefix
 * (`model.path`, `fim.prefixTokens`). Values left at their defaults are not sent,
 * so the server's own defaults and its CODEGEMMA_LSP_* environment variables
 * still apply; sections the server does not know (server, trace, enable) are
 * never sent, because the server warns about unknown sections.
 *
 * A key in `sticky` is sent even when unset, with its default: the server keeps
 * the values it got at `initialize` beneath those it is pushed later, so a key
 * sent once must keep being sent for unsetting it to take effect.
 */
export function serverSettings(
  keys: readonly string[],
  inspect: Inspect,
  sticky: ReadonlySet<string> = new Set(),
): ServerSettings {
  const settings: ServerSettings = {};
  for (const key of keys) {
    const dot = key.indexOf(".");
    if (dot < 0) {
      continue;
    }
    const section = key.slice(0, dot);
    const name = key.slice(dot + 1);
    if (!SERVER_SECTIONS.includes(section) || name.length === 0) {
      continue;
    }
    const info = inspect(key);
    let value = info?.workspaceFolderValue ?? info?.workspaceValue ?? info?.globalValue;
    if (value === undefined && sticky.has(key)) {
      value = info?.defaultValue;
    }
    if (value === undefined) {
      continue;
    }
    (settings[section] ??= {})[name] = value;
  }
  return settings;
}

export interface ServerLaunch {
  command: string;
  args: string[];
}

export type LaunchOrError = ServerLaunch | { error: string };

export function expandHome(value: string, home: string): string {
  if (value === "~") {
    return home;
  }
  if (value.startsWith("~/")) {
    return path.join(home, value.slice(2));
  }
  return value;
}

/**
 * How to start the server: `<pythonPath> -m codegemma_lsp serve` when a Python
 * is configured, else `codegemma.server.command` (program and arguments).
 */
export function serverLaunch(command: unknown, pythonPath: unknown, home: string): LaunchOrError {
  if (typeof pythonPath === "string" && pythonPath.trim() !== "") {
    return { command: expandHome(pythonPath.trim(), home), args: ["-m", "codegemma_lsp", "serve"] };
  }
  const argv = command === undefined || command === null ? DEFAULT_COMMAND : command;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((part) => typeof part === "string")) {
    return {
      error:
        'codegemma.server.command must be a non-empty list of strings, such as ["codegemma-lsp"]',
    };
  }
  const [program, ...args] = argv as string[];
  if (program.trim() === "") {
    return { error: "codegemma.server.command starts with an empty program name" };
  }
  return { command: expandHome(program, home), args };
}
