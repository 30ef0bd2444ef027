import * as assert from "node:assert/strict";
import { describe, it } from "node:test";

import { recordKeystroke, typingDelayMs } from "../pacing";

describe("typingDelayMs", () => {
  const cases: Array<[string, number[], number]> = [
    ["nothing known yet", [], 200],
    ["fewer than five gaps", [1000, 900, 800, 700], 200],
    ["100 ms gaps: twice that", [1000, 900, 800, 700, 600, 500], 200],
    ["150 ms gaps", [1500, 1350, 1200, 1050, 900, 750], 300],
    ["very fast: the floor", [1000, 980, 960, 940, 920, 900], 75],
    ["slow: the ceiling", [5000, 4500, 4000, 3500, 3000, 2500], 600],
    ["a long pause is not rhythm", [20000, 19900, 19800, 19700, 19600, 19500, 9000], 200],
  ];
  for (const [name, times, expected] of cases) {
    it(name, () => assert.equal(typingDelayMs(times), expected));
  }

  it("keeps the last 21 keystrokes, newest first", () => {
    const times: number[] = [];
    for (let t = 0; t < 30; t++) {
      recordKeystroke(times, t);
    }
    assert.equal(times.length, 21);
    assert.equal(times[0], 29);
  });
});
