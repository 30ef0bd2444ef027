// The pause before asking for a completion, from the user's typing rhythm (as Tabby
// adapts its debounce). Pure, so node's test runner checks it (src/test/pacing.test.ts).

export const DEFAULT_DEBOUNCE_MS = 200;
export const DEBOUNCE_MIN_MS = 75;
export const DEBOUNCE_MAX_MS = 600;
/** Keystrokes whose gaps make the rhythm. */
export const RHYTHM_KEYSTROKES = 20;
/** A longer gap between keystrokes is a pause, not the rhythm. */
export const RHYTHM_MAX_GAP_MS = 1000;

/**
 * The pause for the rhythm in `times` (when edits were made, in ms, newest first):
 * twice the median gap between the last 20 keystrokes, from 75 to 600 ms. Gaps over a
 * second are left out; 200 ms until five gaps are known.
 */
export function typingDelayMs(times: readonly number[]): number {
  const gaps: number[] = [];
  for (let i = 0; i + 1 < times.length && i < RHYTHM_KEYSTROKES; i++) {
    const gap = times[i] - times[i + 1];
    if (gap <= RHYTHM_MAX_GAP_MS) {
      gaps.push(gap);
    }
  }
  if (gaps.length < 5) {
    return DEFAULT_DEBOUNCE_MS;
  }
  gaps.sort((a, b) => a - b);
  const middle = Math.floor(gaps.length / 2);
  const median = gaps.length % 2 === 1 ? gaps[middle] : (gaps[middle - 1] + gaps[middle]) / 2;
  return Math.round(Math.max(DEBOUNCE_MIN_MS, Math.min(DEBOUNCE_MAX_MS, 2 * median)));
}

/** Adds an edit made at `now` to `times` (newest first), keeping what the rhythm needs. */
export function recordKeystroke(times: number[], now: number): void {
  times.unshift(now);
  times.length = Math.min(times.length, RHYTHM_KEYSTROKES + 1);
}
