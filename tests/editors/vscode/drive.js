// Drives a running code-server (a real VS Code) in headless Chromium through
// one scenario:
//   accept: open a file, type, see the server's ghost text, accept it with Tab,
//           save, and turn completions off with the extension's toggle command;
//   error:  open a file and find the server's load error in the status bar's tooltip;
//   generate: put the cursor at the end of a comment (line `line`), run "CodeGemma:
//           Generate Code", and save until the file differs from `originalText`;
//   cycle:  type, see ghost text, press Alt+] (VS Code's own "show next inline
//           suggestion") and see another of the server's candidates, then Alt+[.
//
// Usage: node drive.js PARAMS.json
// PARAMS: {scenario, url, playwright, chromium, workdir, timeoutMs, fileName,
//          expectedText, and for accept: typed, savedPath}
// Writes {ok, error, step, values} to <workdir>/outcome.json, and screenshots to
// <workdir>/*.png (always the last screen; each step's screen when it fails).
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const params = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { chromium } = require(params.playwright);

// Flags from the project's checked recipe: without the background-networking
// ones Chromium keeps dialing out on this machine's closed network.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const outcome = { ok: false, error: null, step: null, values: {} };
const timeout = params.timeoutMs ?? 20000;

function write() {
  fs.writeFileSync(path.join(params.workdir, "outcome.json"), JSON.stringify(outcome, null, 1));
}

async function step(name, page, body) {
  outcome.step = name;
  const started = Date.now();
  try {
    const result = await body();
    outcome.values[`${name}_ms`] = Date.now() - started;
    return result;
  } catch (error) {
    await page.screenshot({ path: path.join(params.workdir, `failed-${name}.png`) }).catch(() => {});
    throw error;
  }
}

/** The text of the status-bar item the extension owns. */
async function statusText(page) {
  const item = page.locator(".statusbar-item", { hasText: "CodeGemma" }).first();
  return (await item.innerText()).trim();
}

async function waitForStatus(page, codicon, label) {
  const item = page.locator(`.statusbar-item:has(.codicon-${codicon})`, { hasText: "CodeGemma" });
  await item.first().waitFor({ state: "visible", timeout });
  outcome.values[`status_${label}`] = await statusText(page);
}

/** The text of the editor's current line, as VS Code renders it (spaces normalized). */
async function currentLine(page) {
  const text = await page.locator(".monaco-editor .view-line", { has: page.locator(".ghost-text-decoration, .ghost-text") }).first().innerText();
  return text.replace(/\u00a0/g, " ");
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout });
  await input.fill(`>${title}`);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout });
  await page.keyboard.press("Enter");
}

async function acceptScenario(page) {
  // The extension activates on the Python file, starts the server, and the
  // server reports `ready` once its (scripted) backend is loaded.
  await step("server_ready", page, () => waitForStatus(page, "check", "ready"));

  await step("ghost_text", page, async () => {
    await page.locator(".monaco-editor .view-lines").first().click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type(params.typed, { delay: 30 });
    const ghost = page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text");
    await ghost.first().waitFor({ state: "visible", timeout });
    outcome.values.ghost_classes = await ghost.evaluateAll((nodes) => nodes.map((n) => n.className));
    outcome.values.ghost_text = (await ghost.allInnerTexts()).join("").replace(/\u00a0/g, " ");
    outcome.values.line_with_ghost = await currentLine(page);
    await page.screenshot({ path: path.join(params.workdir, "ghost-text.png") });
  });

  await step("accept", page, async () => {
    await page.keyboard.press("Tab");
    const ghost = page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text");
    await ghost.first().waitFor({ state: "detached", timeout });
    await page.keyboard.press("Control+S");
    const deadline = Date.now() + timeout;
    let saved = fs.readFileSync(params.savedPath, "utf8");
    while (!saved.includes(params.expectedText) && Date.now() < deadline) {
      await page.waitForTimeout(100);
      saved = fs.readFileSync(params.savedPath, "utf8");
    }
    outcome.values.saved_text = saved;
    // The middleware timed the request that produced the ghost text.
    const withLatency = page.locator(".statusbar-item", { hasText: /CodeGemma \d+(\.\d)? m?s/ });
    await withLatency.first().waitFor({ timeout });
    outcome.values.status_after_completion = await statusText(page);
  });

  await step("toggle_off", page, async () => {
    await runCommand(page, "CodeGemma: Toggle Completions");
    await waitForStatus(page, "circle-slash", "disabled");
  });
}

async function errorScenario(page) {
  await step("error_status", page, () => waitForStatus(page, "error", "error"));
  await step("error_tooltip", page, async () => {
    const item = page.locator(".statusbar-item:has(.codicon-error)", { hasText: "CodeGemma" }).first();
    const hover = page.locator(".workbench-hover, .monaco-hover", { hasText: params.expectedText }).first();
    // A hover that closes before it is seen (something drawn over it, such as the
    // error's notification) opens again only when the pointer comes back: leave and
    // hover again, waiting longer each time, until the scenario's own timeout.
    const deadline = Date.now() + timeout;
    for (let waitMs = 2000; ; waitMs *= 2) {
      await item.hover({ timeout });
      try {
        await hover.waitFor({ state: "visible", timeout: Math.max(1, Math.min(waitMs, deadline - Date.now())) });
        break;
      } catch (error) {
        if (Date.now() >= deadline) {
          throw error;
        }
        outcome.values.error_tooltip_hovers = (outcome.values.error_tooltip_hovers ?? 1) + 1;
        await page.mouse.move(0, 0);
      }
    }
    outcome.values.error_tooltip = (await hover.innerText()).trim();
  });
}

async function generateScenario(page) {
  await step("server_ready", page, () => waitForStatus(page, "check", "ready"));

  await step("cursor_after_comment", page, async () => {
    await page.locator(".monaco-editor .view-lines").first().click();
    await runCommand(page, "Go to Line/Column");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible", timeout });
    await input.fill(`:${params.line}`);
    await page.keyboard.press("Enter");
    await page.keyboard.press("End");
  });

  await step("generate", page, async () => {
    await runCommand(page, "CodeGemma: Generate Code");
    // The server writes the code into the editor; save until the file has it.
    const deadline = Date.now() + timeout;
    let saved = fs.readFileSync(params.savedPath, "utf8");
    while (saved === params.originalText && Date.now() < deadline) {
      await page.waitForTimeout(250);
      await page.keyboard.press("Control+S");
      saved = fs.readFileSync(params.savedPath, "utf8");
    }
    outcome.values.saved_text = saved;
    await page.screenshot({ path: path.join(params.workdir, "generated.png") });
  });
}

async function ghostText(page) {
  const ghost = page.locator(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text");
  await ghost.first().waitFor({ state: "visible", timeout });
  return (await ghost.allInnerTexts()).join("").replace(/\u00a0/g, " ");
}

async function waitForOtherGhost(page, than) {
  const deadline = Date.now() + timeout;
  let text = await ghostText(page);
  while (text === than && Date.now() < deadline) {
    await page.waitForTimeout(100);
    text = await ghostText(page);
  }
  return text;
}

async function cycleScenario(page) {
  await step("server_ready", page, () => waitForStatus(page, "check", "ready"));
  await step("ghost_text", page, async () => {
    await page.locator(".monaco-editor .view-lines").first().click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type(params.typed, { delay: 30 });
    outcome.values.first = await ghostText(page);
  });
  await step("next", page, async () => {
    await page.keyboard.press("Alt+BracketRight");
    outcome.values.second = await waitForOtherGhost(page, outcome.values.first);
    await page.screenshot({ path: path.join(params.workdir, "second-candidate.png") });
  });
  await step("previous", page, async () => {
    await page.keyboard.press("Alt+BracketLeft");
    outcome.values.back = await waitForOtherGhost(page, outcome.values.second);
  });
}

const SCENARIOS = { accept: acceptScenario, error: errorScenario, generate: generateScenario, cycle: cycleScenario };

async function main() {
  const browser = await chromium.launch({ executablePath: params.chromium, headless: true, args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await step("workbench", page, async () => {
      await page.goto(params.url);
      await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
    });

    await step("open_file", page, async () => {
      // Quick open; the explorer may not be drawn yet, but the keybinding always works.
      await page.locator(".monaco-workbench").click({ position: { x: 640, y: 400 } });
      await page.keyboard.press("Control+P");
      const input = page.locator(".quick-input-widget input");
      await input.waitFor({ state: "visible", timeout });
      await input.fill(params.fileName);
      await page.locator(".quick-input-list .monaco-list-row", { hasText: params.fileName }).first().waitFor({ timeout });
      await page.keyboard.press("Enter");
      await page.locator(`.tab[aria-label*="${params.fileName}"]`).first().waitFor({ timeout });
      await page.locator(".monaco-editor .view-lines").first().waitFor({ timeout });
    });

    await SCENARIOS[params.scenario](page);
    outcome.ok = true;
    outcome.step = null;
  } catch (error) {
    outcome.error = String(error && error.stack ? error.stack : error);
  } finally {
    await page.screenshot({ path: path.join(params.workdir, "last.png") }).catch(() => {});
    await browser.close().catch(() => {});
    write();
  }
}

main().catch((error) => {
  outcome.error = String(error && error.stack ? error.stack : error);
  write();
  process.exitCode = 1;
});
