import * as assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  documentSelector,
  type InspectedValue,
  LANGUAGES,
  serverLaunch,
  serverSettings,
} from "../settings";

const KEYS = [
  "enable",
  "server.command",
  "server.pythonPath",
  "trace.server",
  "model.path",
  "model.nCtx",
  "fim.prefixTokens",
  "completion.maxNewTokens",
  "log.code",
];

function inspectFrom(values: Record<string, InspectedValue>) {
  return (key: string): InspectedValue | undefined => values[key];
}

describe("serverSettings", () => {
  const cases: Array<{ id: string; values: Record<string, InspectedValue>; sticky?: string[]; want: object }> = [
    { id: "nothing set sends nothing", values: { "model.nCtx": { defaultValue: 4096 } }, want: {} },
    {
      id: "user values nest by section",
      values: {
        "model.path": { defaultValue: "", globalValue: "~/m.gguf" },
        "completion.maxNewTokens": { defaultValue: 64, workspaceValue: 32 },
        "log.code": { defaultValue: false, globalValue: true },
      },
      want: { model: { path: "~/m.gguf" }, completion: { maxNewTokens: 32 }, log: { code: true } },
    },
    {
      id: "folder beats workspace beats user",
      values: { "model.nCtx": { globalValue: 1024, workspaceValue: 2048, workspaceFolderValue: 8192 } },
      want: { model: { nCtx: 8192 } },
    },
    {
      id: "sections the server does not know are never sent",
      values: {
        enable: { globalValue: false },
        "server.command": { globalValue: ["x"] },
        "trace.server": { globalValue: "verbose" },
      },
      want: {},
    },
    {
      id: "a sticky key falls back to its default",
      values: { "fim.prefixTokens": { defaultValue: 1024 } },
      sticky: ["fim.prefixTokens"],
      want: { fim: { prefixTokens: 1024 } },
    },
  ];
  for (const c of cases) {
    it(c.id, () => {
      assert.deepEqual(serverSettings(KEYS, inspectFrom(c.values), new Set(c.sticky ?? [])), c.want);
    });
  }
});

describe("serverLaunch", () => {
  const home = "/home/u";
  const cases: Array<{ id: string; command: unknown; python: unknown; want: object }> = [
    { id: "default command", command: undefined, python: "", want: { command: "codegemma-lsp", args: [] } },
    {
      id: "command with arguments",
      command: ["/venv/bin/python", "-m", "codegemma_lsp", "serve", "-v"],
      python: "",
      want: { command: "/venv/bin/python", args: ["-m", "codegemma_lsp", "serve", "-v"] },
    },
    {
      id: "python path wins over the command",
      command: ["codegemma-lsp"],
      python: "~/venv/bin/python",
      want: { command: "/home/u/venv/bin/python", args: ["-m", "codegemma_lsp", "serve"] },
    },
    { id: "tilde in the program", command: ["~/bin/codegemma-lsp"], python: "  ", want: { command: "/home/u/bin/codegemma-lsp", args: [] } },
  ];
  for (const c of cases) {
    it(c.id, () => {
      assert.deepEqual(serverLaunch(c.command, c.python, home), c.want);
    });
  }

  for (const [id, command] of [
    ["empty list", []],
    ["not a list", "codegemma-lsp serve"],
    ["non-string part", ["python", 3]],
    ["empty program", [""]],
  ] as const) {
    it(`rejects ${id}`, () => {
      assert.ok("error" in serverLaunch(command, undefined, home));
    });
  }
});

describe("documentSelector", () => {
  it("covers every language for files and untitled buffers", () => {
    const selector = documentSelector();
    assert.equal(selector.length, LANGUAGES.length * 2);
    assert.ok(selector.some((f) => f.language === "python" && f.scheme === "untitled"));
    assert.ok(selector.some((f) => f.language === "csharp" && f.scheme === "file"));
  });
});
