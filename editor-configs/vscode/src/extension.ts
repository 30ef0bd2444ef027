// The VS Code side of codegemma-lsp: start the server over stdio, keep it told
// about the settings, and show what it is doing in the status bar.
//
// Inline completions themselves need no code here: vscode-languageclient 10
// registers an InlineCompletionItemProvider for the server's
// `inlineCompletionProvider`, and the item's `codegemma.accept` command for its
// `executeCommandProvider`. Several candidates are several items, which VS Code
// cycles itself (Alt+] / Alt+[ and the inline suggestion toolbar). The middleware
// waits for a pause that follows the typing rhythm (src/pacing.ts), times requests,
// drops them while completions are toggled off, keeps the suggest widget out of it,
// and remembers the suggestion shown, so that accepting its next word can be counted.

import * as os from "node:os";
import { performance } from "node:perf_hooks";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { recordKeystroke, typingDelayMs } from "./pacing";
import { documentSelector, serverLaunch, serverSettings, type ServerSettings } from "./settings";
import {
  becameReady,
  describeStatus,
  SHOW_LOG_COMMAND,
  type StatusModel,
  type StatusNotification,
  TOGGLE_COMMAND,
  type UserNumbers,
} from "./status";

const SECTION = "codegemma";
const STATUS_NOTIFICATION = "codegemma/status";
const RESTART_COMMAND = "codegemma.restart";
const ACCEPT_WORD_COMMAND = "codegemma.acceptWord";
/** The server's command on each item; its arguments name the suggestion. */
const ACCEPT_COMMAND = "codegemma.accept";
const ACCEPT_PARTIAL_COMMAND = "codegemma.acceptPartial";
/** The server's command that generates code and applies it with workspace/applyEdit. */
const GENERATE_COMMAND = "codegemma.generate";
/** Ours, in the command palette: "CodeGemma: Generate Code". */
const GENERATE_CODE_COMMAND = "codegemma.generateCode";
const STATS_REQUEST = "codegemma/stats";
/** vscode.InlineCompletionTriggerKind.Automatic: VS Code asks as the user types. */
const AUTOMATIC_TRIGGER = 1;
/** The user's numbers are asked for at most this often, after answers. */
const NUMBERS_EVERY_MS = 10_000;

/** A suggestion as the server knows it: the argument of its item's accept command. */
export interface SuggestionRef {
  uri: string;
  id: number;
}

type InlineResult = vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined;

/** The suggestion VS Code shows of `result`: its first item, where it is the server's. */
export function shownSuggestion(result: InlineResult): SuggestionRef | undefined {
  const items = Array.isArray(result) ? result : (result?.items ?? []);
  const command = items[0]?.command;
  const target: unknown = command?.command === ACCEPT_COMMAND ? command.arguments?.[0] : undefined;
  if (typeof target !== "object" || target === null) {
    return undefined;
  }
  const { uri, id } = target as Partial<SuggestionRef>;
  return typeof uri === "string" && typeof id === "number" ? { uri, id } : undefined;
}

class CodeGemma implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private readonly output: vscode.LogOutputChannel;
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private status: StatusModel;
  /** Keys sent at `initialize`: once sent, a key is always sent, so unsetting it restores the default. */
  private sentKeys = new Set<string>();
  /** Settles (never rejects) when the current client's start is over: a client cannot be stopped while starting. */
  private started: Promise<void> = Promise.resolve();
  /** Starts and stops run one after another, so that no client is left behind. */
  private lifecycle: Promise<void> = Promise.resolve();
  /** The suggestion of the latest answered inline request, for a partial accept to name. */
  private shown: SuggestionRef | undefined;
  /** When the latest edits were made (performance.now()), newest first. */
  private readonly keystrokes: number[] = [];
  private numbersAskedAt = -Infinity;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel("CodeGemma", { log: true });
    this.item = vscode.window.createStatusBarItem("codegemma.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "CodeGemma";
    this.status = { state: "starting", enabled: this.config().get<boolean>("enable", true) };
    this.render();
    this.item.show();
    this.disposables.push(
      this.output,
      this.item,
      vscode.commands.registerCommand(TOGGLE_COMMAND, () => this.toggle()),
      vscode.commands.registerCommand(SHOW_LOG_COMMAND, () => this.output.show(true)),
      vscode.commands.registerCommand(RESTART_COMMAND, () => this.restart()),
      vscode.commands.registerCommand(ACCEPT_WORD_COMMAND, () => this.acceptWord()),
      vscode.commands.registerCommand(GENERATE_CODE_COMMAND, () => this.generateCode()),
      vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
      vscode.workspace.onDidChangeTextDocument((event) => {
        if (event.contentChanges.length > 0 && event.document === vscode.window.activeTextEditor?.document) {
          recordKeystroke(this.keystrokes, performance.now());
        }
      }),
    );
  }

  /** Milliseconds without typing before asking: `codegemma.debounceMs`, or 0 for the rhythm's. */
  debounceMs(): number {
    const fixed = this.config().get<number>("debounceMs", 0);
    return typeof fixed === "number" && fixed > 0 ? fixed : typingDelayMs(this.keystrokes);
  }

  /** Asks the server for the user's numbers, at most every 10 s, for the tooltip. */
  private refreshNumbers(): void {
    const client = this.client;
    const now = performance.now();
    if (!client?.isRunning() || now - this.numbersAskedAt < NUMBERS_EVERY_MS) {
      return;
    }
    this.numbersAskedAt = now;
    client.sendRequest(STATS_REQUEST, {}).then(
      (result: unknown) => {
        const user = (result as { user?: UserNumbers } | null)?.user;
        if (user && client === this.client) {
          this.update({ numbers: user });
        }
      },
      (error: unknown) => this.output.warn(`${STATS_REQUEST}: ${String(error)}`),
    );
  }

  start(): Promise<void> {
    return this.serially(() => this.startNow());
  }

  stop(): Promise<void> {
    return this.serially(() => this.stopNow());
  }

  restart(): Promise<void> {
    return this.serially(async () => {
      await this.stopNow();
      await this.startNow();
    });
  }

  private serially(step: () => Promise<void>): Promise<void> {
    this.lifecycle = this.lifecycle.then(step, step);
    return this.lifecycle;
  }

  private async startNow(): Promise<void> {
    const config = this.config();
    const launch = serverLaunch(config.get("server.command"), config.get("server.pythonPath"), os.homedir());
    if ("error" in launch) {
      this.fail(launch.error, { popup: true });
      return;
    }
    const commandLine = [launch.command, ...launch.args].join(" ");
    // No `transport`: TransportKind.stdio would append `--stdio` to the arguments,
    // which the server does not take. Without it the client still speaks over stdio.
    const serverOptions: ServerOptions = { ...launch };
    this.output.info(`starting the server: ${commandLine}`);
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(),
      outputChannel: this.output,
      initializationOptions: () => {
        const settings = this.serverSettings();
        this.sentKeys = keysOf(settings);
        return { [SECTION]: settings };
      },
      middleware: {
        // The server also answers textDocument/completion for editors without
        // inline completion. Here that would put the same text in the suggest
        // widget, and each of those requests would cancel the inline one that
        // the server is working on for the same document.
        provideCompletionItem: () => null,
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!this.status.enabled) {
            return null;
          }
          // Asked as the user types: wait for a pause in their rhythm first; a keystroke
          // meanwhile cancels this request, and the next one waits again.
          if ((context as { triggerKind?: number }).triggerKind === AUTOMATIC_TRIGGER) {
            await new Promise((resolve) => setTimeout(resolve, this.debounceMs()));
            if (token.isCancellationRequested) {
              return null;
            }
          }
          const started = performance.now();
          const result = await next(document, position, context, token);
          if (!token.isCancellationRequested) {
            this.update({ latencyMs: performance.now() - started });
            this.shown = shownSuggestion(result);
            this.refreshNumbers();
          }
          return result;
        },
        workspace: {
          // Should the server pull its section, it gets the same filtered view it is pushed.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) {
              return result;
            }
            return params.items.map((item, i) => (item.section === SECTION ? this.serverSettings() : result[i]));
          },
        },
      },
    };
    const client = new LanguageClient(SECTION, "CodeGemma", serverOptions, clientOptions);
    this.client = client;
    this.update({ state: "starting", model: undefined, message: undefined });
    client.onNotification(STATUS_NOTIFICATION, (params: StatusNotification) => {
      if (client === this.client) {
        const before = this.status.state;
        this.update({
          state: params.state,
          model: params.model,
          message: params.message,
          progress: params.progress,
          slow: params.slow === true,
        });
        if (becameReady(before, params.state)) {
          this.askAgain();
        }
      }
    });
    // Events from a client that was stopped on purpose find `this.client` changed.
    client.onDidChangeState((event) => {
      if (client !== this.client) {
        return;
      }
      if (event.newState === State.Stopped) {
        this.update({ state: "stopped", message: undefined });
      } else if (event.newState === State.Starting) {
        this.update({ state: "starting", message: undefined });
      }
    });
    this.started = client.start().then(
      () => undefined,
      (error: unknown) => {
        if (client === this.client) {
          const reason = error instanceof Error ? error.message : String(error);
          // The client has already popped up its own "couldn't create connection".
          this.fail(
            `could not start the server (${commandLine}): ${reason}. ` +
              "Set codegemma.server.command or codegemma.server.pythonPath.",
            { popup: false },
          );
        }
      },
    );
    await this.started;
  }

  private async stopNow(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) {
      return;
    }
    await this.started;
    try {
      if (client.isRunning()) {
        await client.stop();
      }
    } catch (error) {
      this.output.warn(`stopping the server: ${String(error)}`);
    }
  }

  /**
   * Asks again for the ghost text at the cursor. Requests made while the model loaded
   * were answered with nothing, and VS Code asks again only at the next keystroke.
   */
  private askAgain(): void {
    const editor = vscode.window.activeTextEditor;
    if (!this.status.enabled || editor === undefined) {
      return;
    }
    if (vscode.languages.match(documentSelector(), editor.document) === 0) {
      return;
    }
    void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger").then(undefined, (error: unknown) => {
      this.output.warn(`asking again for a completion: ${String(error)}`);
    });
  }

  async toggle(): Promise<void> {
    const enabled = !this.status.enabled;
    this.update({ enabled });
    if (!enabled) {
      await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
    }
    this.output.info(`completions ${enabled ? "on" : "off"}`);
  }

  /** VS Code's own accept-next-word, then the server is told how much was taken. */
  async acceptWord(): Promise<void> {
    const shown = this.shown;
    const editor = vscode.window.activeTextEditor;
    const before = editor?.document.offsetAt(editor.selection.active);
    await vscode.commands.executeCommand("editor.action.inlineSuggest.acceptNextWord");
    const client = this.client;
    if (shown === undefined || editor === undefined || before === undefined || !client?.isRunning()) {
      return;
    }
    // The cursor ends after the inserted word; nothing moved means nothing was shown.
    const chars = editor.document.offsetAt(editor.selection.active) - before;
    if (chars <= 0) {
      return;
    }
    try {
      await client.sendRequest("workspace/executeCommand", {
        command: ACCEPT_PARTIAL_COMMAND,
        arguments: [{ uri: shown.uri, id: shown.id, kind: "word", chars }],
      });
    } catch (error) {
      this.output.warn(`${ACCEPT_PARTIAL_COMMAND}: ${String(error)}`);
    }
  }

  /**
   * "CodeGemma: Generate Code": code for the selection, or below the comment at the
   * cursor, or (with neither) for an instruction typed in an input box. The server
   * writes the code into the editor itself (workspace/applyEdit), showing its progress
   * with a cancel button.
   */
  async generateCode(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const client = this.client;
    if (editor === undefined || !client?.isRunning()) {
      void vscode.window.showWarningMessage("CodeGemma: the server is not running.");
      return;
    }
    const selection = editor.selection;
    const argument: { uri: string; range: unknown; instruction?: string } = {
      uri: client.code2ProtocolConverter.asUri(editor.document.uri),
      range: client.code2ProtocolConverter.asRange(selection),
    };
    if (selection.isEmpty && !(await this.generateActionAt(editor.document.uri, selection))) {
      const instruction = await vscode.window.showInputBox({
        title: "CodeGemma: Generate Code",
        prompt: "What should the code do? (Or write it as a comment, or select it, and run this again.)",
      });
      if (!instruction?.trim()) {
        return;
      }
      argument.instruction = instruction;
    }
    try {
      await client.sendRequest("workspace/executeCommand", { command: GENERATE_COMMAND, arguments: [argument] });
    } catch (error) {
      this.output.warn(`${GENERATE_COMMAND}: ${String(error)}`);
    }
  }

  /** Whether the server offers to generate from a comment at `range` (so no instruction is needed). */
  private async generateActionAt(uri: vscode.Uri, range: vscode.Range): Promise<boolean> {
    const actions = await vscode.commands.executeCommand<(vscode.CodeAction | vscode.Command)[] | undefined>(
      "vscode.executeCodeActionProvider",
      uri,
      range,
      vscode.CodeActionKind.RefactorRewrite.value,
    );
    return (actions ?? []).some((action) => {
      const command = "title" in action && "command" in action && typeof action.command === "object" ? action.command : action;
      return (command as vscode.Command | undefined)?.command === GENERATE_COMMAND;
    });
  }

  dispose(): void {
    void this.stop();
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
  }

  private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    if (event.affectsConfiguration(`${SECTION}.enable`)) {
      this.update({ enabled: this.config().get<boolean>("enable", true) });
    }
    if (event.affectsConfiguration(`${SECTION}.server`)) {
      void this.restart();
      return;
    }
    const client = this.client;
    if (client?.isRunning()) {
      void client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: this.serverSettings() },
      });
    }
  }

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  /** The contributed setting names, without the `codegemma.` prefix. */
  private settingKeys(): string[] {
    const properties: Record<string, unknown> =
      this.context.extension.packageJSON?.contributes?.configuration?.properties ?? {};
    return Object.keys(properties)
      .filter((key) => key.startsWith(`${SECTION}.`))
      .map((key) => key.slice(SECTION.length + 1));
  }

  private serverSettings(): ServerSettings {
    const config = this.config();
    return serverSettings(this.settingKeys(), (key) => config.inspect(key), this.sentKeys);
  }

  private fail(message: string, { popup }: { popup: boolean }): void {
    this.output.error(message);
    this.update({ state: "error", message });
    if (!popup) {
      return;
    }
    void vscode.window.showErrorMessage(`CodeGemma: ${message}`, "Open Settings", "Show Log").then((choice) => {
      if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.server`);
      } else if (choice === "Show Log") {
        this.output.show(true);
      }
    });
  }

  private update(change: Partial<StatusModel>): void {
    this.status = { ...this.status, ...change };
    this.render();
  }

  private render(): void {
    const view = describeStatus(this.status);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.command;
    this.item.backgroundColor = view.alert ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }
}

function keysOf(settings: ServerSettings): Set<string> {
  return new Set(
    Object.entries(settings).flatMap(([section, values]) => Object.keys(values).map((name) => `${section}.${name}`)),
  );
}

let extension: CodeGemma | undefined;

export function activate(context: vscode.ExtensionContext): void {
  extension = new CodeGemma(context);
  context.subscriptions.push(extension);
  void extension.start();
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
  extension = undefined;
}
