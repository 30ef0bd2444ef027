// Stand-ins for the `vscode` module and vscode-languageclient, just large
// enough for src/extension.ts, so its wiring can be tested under node's test
// runner. `install()` must run before the extension module is first required.

import Module = require("node:module");

type Listener<T> = (value: T) => unknown;

export interface FakeSetting {
  defaultValue?: unknown;
  globalValue?: unknown;
}

export class FakeStatusBarItem {
  text = "";
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  backgroundColor: unknown;
  visible = false;
  show(): void {
    this.visible = true;
  }
  dispose(): void {
    this.visible = false;
  }
}

export class FakeClient {
  static created: FakeClient[] = [];
  static startError: Error | undefined;
  /** When set, start() waits for it. */
  static gate: Promise<void> | undefined;

  readonly notifications = new Map<string, Listener<unknown>>();
  readonly sent: Array<{ method: string; params: unknown }> = [];
  readonly requests: Array<{ method: string; params: unknown }> = [];
  private stateListeners: Array<Listener<{ oldState: number; newState: number }>> = [];
  running = false;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: { command: string; args: string[]; transport?: unknown },
    readonly clientOptions: any,
  ) {
    FakeClient.created.push(this);
  }

  onNotification(method: string, handler: Listener<unknown>): { dispose(): void } {
    this.notifications.set(method, handler);
    return { dispose: () => this.notifications.delete(method) };
  }

  onDidChangeState(listener: Listener<{ oldState: number; newState: number }>): { dispose(): void } {
    this.stateListeners.push(listener);
    return { dispose: () => undefined };
  }

  async start(): Promise<void> {
    this.changeState(State.Starting);
    await FakeClient.gate;
    if (FakeClient.startError) {
      throw FakeClient.startError;
    }
    this.running = true;
    this.changeState(State.Running);
  }

  async stop(): Promise<void> {
    if (!this.running) {
      throw new Error("Client is not running and can't be stopped");
    }
    this.running = false;
    this.changeState(State.Stopped);
  }

  isRunning(): boolean {
    return this.running;
  }

  async sendNotification(type: { method: string }, params: unknown): Promise<void> {
    this.sent.push({ method: type.method, params });
  }

  async sendRequest(method: string, params: unknown): Promise<null> {
    this.requests.push({ method, params });
    return null;
  }

  /** What the server side would do: send a notification to the client. */
  notify(method: string, params: unknown): void {
    this.notifications.get(method)?.(params);
  }

  /** The client's own restart after a crash. */
  restarting(): void {
    this.changeState(State.Starting);
  }

  crash(): void {
    this.running = false;
    this.changeState(State.Stopped);
  }

  private changeState(newState: number): void {
    for (const listener of this.stateListeners) {
      listener({ oldState: 0, newState });
    }
  }
}

const State = { Stopped: 1, Starting: 3, Running: 2 };

export class FakeVscode {
  readonly settings = new Map<string, FakeSetting>();
  readonly commands = new Map<string, (...args: unknown[]) => unknown>();
  readonly executed: string[] = [];
  readonly errors: string[] = [];
  readonly log: string[] = [];
  readonly items: FakeStatusBarItem[] = [];
  /** The cursor's offset in the active editor's document. */
  cursorOffset = 0;
  /** What running a command does, e.g. moving the cursor. */
  readonly effects = new Map<string, () => void>();
  private configListeners: Array<Listener<{ affectsConfiguration(section: string): boolean }>> = [];

  /** Change settings as a user would, and tell the listeners which ones changed. */
  set(values: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(values)) {
      this.settings.set(key, { ...this.settings.get(key), globalValue: value });
    }
    const changed = Object.keys(values).map((key) => `codegemma.${key}`);
    const event = {
      affectsConfiguration: (section: string) =>
        changed.some((key) => key === section || key.startsWith(`${section}.`)),
    };
    for (const listener of this.configListeners) {
      listener(event);
    }
  }

  private activeEditor(): unknown {
    const fake = this;
    return {
      document: { languageId: "python", offsetAt: (position: { offset: number }) => position.offset },
      get selection() {
        return { active: { offset: fake.cursorOffset } };
      },
    };
  }

  get item(): FakeStatusBarItem {
    return this.items[this.items.length - 1];
  }

  module(): unknown {
    const channel = (level: string) => (message: string) => this.log.push(`${level}: ${message}`);
    const self = this;
    return {
      StatusBarAlignment: { Left: 1, Right: 2 },
      ThemeColor: class {
        constructor(readonly id: string) {}
      },
      window: {
        createOutputChannel: () => ({
          info: channel("info"),
          warn: channel("warn"),
          error: channel("error"),
          show: () => undefined,
          dispose: () => undefined,
        }),
        createStatusBarItem: () => {
          const item = new FakeStatusBarItem();
          this.items.push(item);
          return item;
        },
        get activeTextEditor() {
          return self.activeEditor();
        },
        showErrorMessage: async (message: string) => {
          this.errors.push(message);
          return undefined;
        },
      },
      commands: {
        registerCommand: (id: string, run: (...args: unknown[]) => unknown) => {
          this.commands.set(id, run);
          return { dispose: () => this.commands.delete(id) };
        },
        executeCommand: async (id: string) => {
          this.executed.push(id);
          this.effects.get(id)?.();
        },
      },
      languages: {
        // The score vscode.languages.match gives: 0 for no match.
        match: (selector: Array<{ language: string }>, document: { languageId: string }) =>
          selector.some((filter) => filter.language === document.languageId) ? 10 : 0,
      },
      workspace: {
        getConfiguration: (section: string) => ({
          get: (key: string, fallback?: unknown) => {
            const setting = this.settings.get(`${section}.${key}`.slice(section.length + 1));
            return setting?.globalValue ?? setting?.defaultValue ?? fallback;
          },
          inspect: (key: string) => this.settings.get(key),
        }),
        onDidChangeConfiguration: (listener: Listener<{ affectsConfiguration(section: string): boolean }>) => {
          this.configListeners.push(listener);
          return { dispose: () => undefined };
        },
        onDidChangeTextDocument: () => ({ dispose: () => undefined }),
      },
    };
  }
}

const clientModule = {
  LanguageClient: FakeClient,
  State,
  DidChangeConfigurationNotification: { type: { method: "workspace/didChangeConfiguration" } },
};

/** Route `require("vscode")` and `require("vscode-languageclient/node")` to the fakes. */
export function install(vscode: () => FakeVscode): void {
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = loader._load;
  loader._load = function (request: string, ...rest: unknown[]) {
    if (request === "vscode") {
      return vscode().module();
    }
    if (request === "vscode-languageclient/node") {
      return clientModule;
    }
    return original.call(this, request, ...rest);
  };
}
