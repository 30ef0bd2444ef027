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
