import * as assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  becameReady,
  describeStatus,
  formatLatency,
  type ServerState,
  SHOW_LOG_COMMAND,
  type StatusModel,
  TOGGLE_COMMAND,
} from "../status";

describe("describeStatus", () => {
  const cases: Array<{ id: string; status: StatusModel; text: RegExp; tooltip: RegExp; command: string; alert: boolean }> = [
    {
      id: "starting",
      status: { state: "starting", enabled: true },
      text: /loading~spin/,
      tooltip: /starting the server/,
      command: SHOW_LOG_COMMAND,
      alert: false,
    },
    {
      id: "loading",
      status: { state: "loading", enabled: true, model: "codegemma-2b.gguf" },
      text: /loading~spin/,
      tooltip: /loading the model[\s\S]*codegemma-2b\.gguf/,
      command: SHOW_LOG_COMMAND,
      alert: false,
    },
    {
      id: "downloading",
      status: { state: "downloading", enabled: true, model: "codegemma-2b-Q4_K_M.gguf", progress: 42 },
      text: /cloud-download\) CodeGemma 42%$/,
      tooltip: /downloading the model \(42%\)[\s\S]*codegemma-2b-Q4_K_M\.gguf/,
      command: SHOW_LOG_COMMAND,
      alert: false,
    },
    {
      id: "ready without a completion yet",
      status: { state: "ready", enabled: true },
      text: /^\$\(check\) CodeGemma$/,
      tooltip: /ready/,
      command: TOGGLE_COMMAND,
      alert: false,
    },
    {
      id: "ready with the last latency",
      status: { state: "ready", enabled: true, latencyMs: 123.4 },
      text: /CodeGemma 123 ms$/,
      tooltip: /Last completion: 123 ms/,
      command: TOGGLE_COMMAND,
      alert: false,
    },
    {
      id: "error carries the message",
      status: { state: "error", enabled: true, message: "no model configured" },
      text: /\$\(error\)/,
      tooltip: /no model configured/,
      command: SHOW_LOG_COMMAND,
      alert: true,
    },
    {
      id: "disabled",
      status: { state: "ready", enabled: false },
      text: /circle-slash/,
      tooltip: /completions off/,
      command: TOGGLE_COMMAND,
      alert: false,
    },
    {
      id: "an error shows even when disabled",
      status: { state: "error", enabled: false, message: "boom" },
      text: /\$\(error\)/,
      tooltip: /boom/,
      command: SHOW_LOG_COMMAND,
      alert: true,
    },
    {
      id: "stopped",
      status: { state: "stopped", enabled: true },
      text: /debug-disconnect/,
      tooltip: /server stopped/,
      command: SHOW_LOG_COMMAND,
      alert: true,
    },
  ];
  for (const c of cases) {
    it(c.id, () => {
      const view = describeStatus(c.status);
      assert.match(view.text, c.text);
      assert.match(view.tooltip, c.tooltip);
      assert.equal(view.command, c.command);
      assert.equal(view.alert, c.alert);
    });
  }
});

describe("the user's numbers and a slow server", () => {
  const numbers = {
    shown: 12,
    accepted: 5,
    accepted_partially: 1,
    accepted_chars: 96,
    retained_chars: 80,
    latency_ms: { p50: 240, p95: 1300 },
    cache_or_join_share: 0.25,
  };

  it("puts the numbers in the tooltip", () => {
    const view = describeStatus({ state: "ready", enabled: true, numbers });
    assert.match(
      view.tooltip,
      /Yours: shown 12, accepted 5 \(\+1 partly\), 80 of 96 characters kept 30 s; p50 240 ms, p95 1\.3 s; 25% from cache or joins/,
    );
  });

  it("says a slow server is slow, with the server's advice", () => {
    const view = describeStatus({
      state: "ready",
      enabled: true,
      slow: true,
      message: "completions are slow: run `codegemma-lsp doctor`",
      latencyMs: 2500,
    });
    assert.equal(view.text, "$(watch) CodeGemma 2.5 s");
    assert.match(view.tooltip, /ready, but slow: completions are slow: run `codegemma-lsp doctor`/);
    assert.equal(view.alert, false);
  });
});

describe("formatLatency", () => {
  for (const [ms, want] of [
    [0.4, "0 ms"],
    [999.4, "999 ms"],
    [1000, "1.0 s"],
    [12_345, "12.3 s"],
  ] as const) {
    it(`${ms} -> ${want}`, () => assert.equal(formatLatency(ms), want));
  }
});

describe("becameReady", () => {
  const cases: Array<[ServerState, ServerState, boolean]> = [
    ["loading", "ready", true],
    ["downloading", "ready", true],
    ["starting", "ready", true],
    ["ready", "ready", false],
    ["loading", "error", false],
    ["ready", "loading", false],
  ];
  for (const [before, after, expected] of cases) {
    it(`${before} -> ${after}`, () => {
      assert.equal(becameReady(before, after), expected);
    });
  }
});
