// The extension's wiring, against fakes of `vscode` and vscode-languageclient:
// how it starts the client, what it sends, and what the status bar shows.

import * as assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";

import { FakeClient, FakeVscode, install } from "./fakes";

let vscode = new FakeVscode();
install(() => vscode);

type ExtensionModule = typeof import("../extension");

const packageJSON = {
  contributes: {
    configuration: {
      properties: {
        "codegemma.enable": {},
        "codegemma.server.command": {},
        "codegemma.server.pythonPath": {},
        "codegemma.model.path": {},
        "codegemma.model.nCtx": {},
        "codegemma.completion.maxNewTokens": {},
        "codegemma.trace.server": {},
      },
    },
  },
};

const cancelled = { isCancellationRequested: true };
const live = { isCancellationRequested: false };

/** Loads a fresh copy of the extension (it captures `vscode` at load) and activates it. */
async function activate(settings: Record<string, unknown> = {}): Promise<{ extension: ExtensionModule; client: FakeClient }> {
  for (const [key, value] of Object.entries(settings)) {
    vscode.settings.set(key, { globalValue: value });
  }
  delete require.cache[require.resolve("../extension")];
  const extension: ExtensionModule = require("../extension");
  const context = { subscriptions: [] as unknown[], extension: { packageJSON } };
  extension.activate(context as never);
  await settle();
  return { extension, client: FakeClient.created[FakeClient.created.length - 1] };
}

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

let loaded: ExtensionModule | undefined;

beforeEach(() => {
  vscode = new FakeVscode();
  vscode.settings.set("enable", { defaultValue: true });
  vscode.settings.set("server.command", { defaultValue: ["codegemma-lsp"] });
  vscode.settings.set("model.nCtx", { defaultValue: 4096 });
  FakeClient.created = [];
  FakeClient.startError = undefined;
  FakeClient.gate = undefined;
});

afterEach(async () => {
  await loaded?.deactivate();
  loaded = undefined;
});

describe("starting the server", () => {
  it("runs the configured command over stdio for every language and scheme", async () => {
    const { extension, client } = await activate({ "server.command": ["/venv/bin/python", "-m", "codegemma_lsp", "serve"] });
    loaded = extension;
    assert.deepEqual(client.serverOptions, { command: "/venv/bin/python", args: ["-m", "codegemma_lsp", "serve"] });
    assert.equal(client.clientOptions.documentSelector.length, 24);
    assert.ok(vscode.log.some((line) => line.includes("starting the server: /venv/bin/python -m codegemma_lsp serve")));
  });

  it("sends only the server's settings that the user set, at initialize", async () => {
    const { extension, client } = await activate({ "model.path": "/m.gguf", "trace.server": "verbose" });
    loaded = extension;
    assert.deepEqual(client.clientOptions.initializationOptions(), { codegemma: { model: { path: "/m.gguf" } } });
  });

  it("reports a server that cannot start in the status bar (the client pops up its own message)", async () => {
    FakeClient.startError = new Error("spawn codegemma-lsp ENOENT");
    const { extension } = await activate();
    loaded = extension;
    assert.match(vscode.item.text, /\$\(error\)/);
    assert.match(vscode.item.tooltip ?? "", /ENOENT[\s\S]*codegemma\.server\.command/);
    assert.equal(vscode.errors.length, 0);
  });

  it("rejects a malformed command without starting anything, and says so", async () => {
    const { extension } = await activate({ "server.command": [] });
    loaded = extension;
    assert.equal(FakeClient.created.length, 0);
    assert.match(vscode.item.tooltip ?? "", /non-empty list/);
    assert.equal(vscode.errors.length, 1);
  });
});

describe("status", () => {
  it("follows the server's codegemma/status notifications", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    assert.match(vscode.item.text, /loading~spin/);
    client.notify("codegemma/status", { state: "downloading", model: "tiny.gguf", message: "", progress: 42 });
    assert.match(vscode.item.text, /CodeGemma 42%/);
    client.notify("codegemma/status", { state: "loading", model: "tiny.gguf", message: "" });
    assert.match(vscode.item.tooltip ?? "", /loading the model[\s\S]*tiny\.gguf/);
    client.notify("codegemma/status", { state: "ready", model: "tiny.gguf", message: "" });
    assert.equal(vscode.item.text, "$(check) CodeGemma");
    // What was typed while the model loaded is asked for again, once.
    assert.deepEqual(
      vscode.executed.filter((id) => id === "editor.action.inlineSuggest.trigger"),
      ["editor.action.inlineSuggest.trigger"],
    );
    client.notify("codegemma/status", { state: "ready", model: "tiny.gguf", message: "" });
    assert.equal(vscode.executed.filter((id) => id === "editor.action.inlineSuggest.trigger").length, 1);
    client.notify("codegemma/status", { state: "error", model: null, message: "no model configured" });
    assert.match(vscode.item.text, /\$\(error\)/);
    assert.match(vscode.item.tooltip ?? "", /no model configured/);
  });

  it("shows a server that stopped on its own, and its restart", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    client.notify("codegemma/status", { state: "ready", model: "m", message: "" });
    client.crash();
    assert.match(vscode.item.text, /debug-disconnect/);
    client.restarting();
    assert.match(vscode.item.text, /loading~spin/);
  });
});

describe("inline completions", () => {
  const item = { insertText: "a + b" };

  it("times each answered request for the status bar", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    client.notify("codegemma/status", { state: "ready", model: "m", message: "" });
    const provide = client.clientOptions.middleware.provideInlineCompletionItems;
    const result = await provide({}, {}, {}, live, async () => [item]);
    assert.deepEqual(result, [item]);
    assert.match(vscode.item.text, /^\$\(check\) CodeGemma \d+ ms$/);
  });

  it("waits for a pause before an automatic request, and drops it if typing goes on", async () => {
    const { extension, client } = await activate({ debounceMs: 5 });
    loaded = extension;
    const provide = client.clientOptions.middleware.provideInlineCompletionItems;
    let asked = 0;
    const next = async () => {
      asked += 1;
      return [item];
    };
    const token = { isCancellationRequested: false };
    const waiting = provide({}, {}, { triggerKind: 1 }, token, next);
    token.isCancellationRequested = true; // the next keystroke, during the pause
    assert.equal(await waiting, null);
    assert.equal(asked, 0);
    assert.deepEqual(await provide({}, {}, { triggerKind: 1 }, live, next), [item]);
    assert.equal(asked, 1);
  });

  it("shows several candidates as they come, and asks for the user's numbers", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    client.notify("codegemma/status", { state: "ready", model: "m", message: "", slow: true });
    const items = [{ insertText: "a + b" }, { insertText: "a - b" }, { insertText: "a * b" }];
    const result = await client.clientOptions.middleware.provideInlineCompletionItems({}, {}, {}, live, async () => ({ items }));
    assert.deepEqual(result, { items });
    assert.ok(client.requests.some((request) => request.method === "codegemma/stats"));
    assert.match(vscode.item.text, /^\$\(watch\) CodeGemma/);
  });

  it("does not count a cancelled request", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    client.notify("codegemma/status", { state: "ready", model: "m", message: "" });
    await client.clientOptions.middleware.provideInlineCompletionItems({}, {}, {}, cancelled, async () => null);
    assert.equal(vscode.item.text, "$(check) CodeGemma");
  });

  it("asks the server nothing while toggled off, and again once toggled on", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    const provide = client.clientOptions.middleware.provideInlineCompletionItems;
    await vscode.commands.get("codegemma.toggle")?.();
    assert.ok(vscode.executed.includes("editor.action.inlineSuggest.hide"));
    let asked = 0;
    const next = async () => {
      asked += 1;
      return [item];
    };
    assert.equal(await provide({}, {}, {}, live, next), null);
    assert.equal(asked, 0);
    assert.match(vscode.item.text, /circle-slash/);
    await vscode.commands.get("codegemma.toggle")?.();
    assert.deepEqual(await provide({}, {}, {}, live, next), [item]);
    assert.equal(asked, 1);
  });

  it("accepts the next word and tells the server how much of which suggestion was taken", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    const shown = { insertText: "add(1, 2)", command: { command: "codegemma.accept", arguments: [{ uri: "file:///m.py", id: 7 }] } };
    await client.clientOptions.middleware.provideInlineCompletionItems({}, {}, {}, live, async () => ({ items: [shown] }));
    vscode.cursorOffset = 10;
    vscode.effects.set("editor.action.inlineSuggest.acceptNextWord", () => {
      vscode.cursorOffset += 3;
    });
    await vscode.commands.get("codegemma.acceptWord")?.();
    assert.ok(vscode.executed.includes("editor.action.inlineSuggest.acceptNextWord"));
    // (The answer also asked for the user's numbers, codegemma/stats.)
    const commands = () => client.requests.filter((request) => request.method === "workspace/executeCommand");
    assert.deepEqual(commands(), [
      {
        method: "workspace/executeCommand",
        params: { command: "codegemma.acceptPartial", arguments: [{ uri: "file:///m.py", id: 7, kind: "word", chars: 3 }] },
      },
    ]);
    // Nothing inserted (no suggestion shown by then): nothing counted.
    vscode.effects.clear();
    await vscode.commands.get("codegemma.acceptWord")?.();
    assert.equal(commands().length, 1);
  });

  it("names no suggestion for items that are not the server's", async () => {
    const { shownSuggestion }: ExtensionModule = require("../extension");
    assert.equal(shownSuggestion([{ insertText: "x" } as never]), undefined);
    assert.equal(shownSuggestion(null), undefined);
    const other = { insertText: "x", command: { command: "other", title: "", arguments: [{ uri: "u", id: 1 }] } };
    assert.equal(shownSuggestion([other as never]), undefined);
  });

  it("keeps the server's textDocument/completion out of the suggest widget", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    let asked = false;
    const result = await client.clientOptions.middleware.provideCompletionItem({}, {}, {}, live, async () => {
      asked = true;
      return [];
    });
    assert.equal(result, null);
    assert.equal(asked, false);
  });
});

describe("settings changes", () => {
  it("pushes the server's settings, and a key once sent is sent with its default when unset", async () => {
    const { extension, client } = await activate({ "model.nCtx": 2048 });
    loaded = extension;
    client.clientOptions.initializationOptions();
    vscode.set({ "completion.maxNewTokens": 16 });
    vscode.settings.set("model.nCtx", { defaultValue: 4096 });
    vscode.set({ "model.path": "/m.gguf" });
    assert.deepEqual(
      client.sent.map((message) => message.method),
      ["workspace/didChangeConfiguration", "workspace/didChangeConfiguration"],
    );
    assert.deepEqual(client.sent[1].params, {
      settings: { codegemma: { model: { path: "/m.gguf", nCtx: 4096 }, completion: { maxNewTokens: 16 } } },
    });
  });

  it("lets a client finish starting, then stops it, before starting the next", async () => {
    let release = () => {};
    FakeClient.gate = new Promise<void>((resolve) => (release = resolve));
    const { extension, client } = await activate();
    loaded = extension;
    const restarting = vscode.commands.get("codegemma.restart")?.();
    await settle();
    assert.equal(FakeClient.created.length, 1);
    release();
    await restarting;
    assert.equal(client.isRunning(), false);
    assert.equal(FakeClient.created.length, 2);
    assert.equal(FakeClient.created[1].isRunning(), true);
  });

  it("restarts the server when its command changes", async () => {
    const { extension, client } = await activate();
    loaded = extension;
    vscode.set({ "server.pythonPath": "/usr/bin/python3" });
    await settle();
    assert.equal(client.isRunning(), false);
    assert.equal(FakeClient.created.length, 2);
    assert.deepEqual(FakeClient.created[1].serverOptions, {
      command: "/usr/bin/python3",
      args: ["-m", "codegemma_lsp", "serve"],
    });
  });

  it("answers a pull of the codegemma section with the same filtered view", async () => {
    const { extension, client } = await activate({ "model.path": "/m.gguf", "server.command": ["x"] });
    loaded = extension;
    const configuration = client.clientOptions.middleware.workspace.configuration;
    const result = await configuration(
      { items: [{ section: "codegemma" }, { section: "editor" }] },
      live,
      async () => [{ raw: true }, { tabSize: 4 }],
    );
    assert.deepEqual(result, [{ model: { path: "/m.gguf" } }, { tabSize: 4 }]);
  });
});
