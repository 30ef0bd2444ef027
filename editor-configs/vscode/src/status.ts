// What the status-bar item says, as a pure function of what the extension knows.

/** `downloading`, `loading`, `ready` and `error` come from the server's `codegemma/status`; the rest from the client. */
export type ServerState = "starting" | "downloading" | "loading" | "ready" | "error" | "stopped";

export interface StatusNotification {
  state: "downloading" | "loading" | "ready" | "error";
  model?: string | null;
  message?: string | null;
  /** While downloading: the percentage fetched. */
  progress?: number | null;
  /** Answers have become slow (completion.slowMs); `message` says why and what to do. */
  slow?: boolean;
}

/** The user's own numbers: `codegemma/stats` .user. */
export interface UserNumbers {
  shown: number;
  accepted: number;
  accepted_partially: number;
  accepted_chars: number;
  retained_chars: number;
  latency_ms: { p50: number; p95: number };
  cache_or_join_share: number;
}

export interface StatusModel {
  state: ServerState;
  enabled: boolean;
  model?: string | null;
  message?: string | null;
  progress?: number | null;
  latencyMs?: number;
  slow?: boolean;
  numbers?: UserNumbers | null;
}

/** Whether a change from `before` to `after` means the model just became ready to answer. */
export function becameReady(before: ServerState, after: ServerState): boolean {
  return after === "ready" && before !== "ready";
}

export interface StatusView {
  text: string;
  tooltip: string;
  /** The command a click runs. */
  command: string;
  /** True when the item should stand out (error background). */
  alert: boolean;
}

export const TOGGLE_COMMAND = "codegemma.toggle";
export const SHOW_LOG_COMMAND = "codegemma.showLog";

export function formatLatency(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The user's numbers in one line, e.g. "Yours: shown 12, accepted 5 (+1 partly), ...". */
export function formatNumbers(numbers: UserNumbers): string {
  const kept = `${numbers.retained_chars} of ${numbers.accepted_chars} characters kept 30 s`;
  const latency = `p50 ${formatLatency(numbers.latency_ms.p50)}, p95 ${formatLatency(numbers.latency_ms.p95)}`;
  const shared = `${Math.round(100 * numbers.cache_or_join_share)}% from cache or joins`;
  return (
    `Yours: shown ${numbers.shown}, accepted ${numbers.accepted} (+${numbers.accepted_partially} partly), ` +
    `${kept}; ${latency}; ${shared}`
  );
}

export function describeStatus(status: StatusModel): StatusView {
  const details: string[] = [];
  if (status.model) {
    details.push(`Model: ${status.model}`);
  }
  if (status.latencyMs !== undefined) {
    details.push(`Last completion: ${formatLatency(status.latencyMs)}`);
  }
  if (status.numbers) {
    details.push(formatNumbers(status.numbers));
  }
  const withDetails = (headline: string): string => [headline, ...details].join("\n");

  const healthy = status.state !== "error" && status.state !== "stopped";
  if (!status.enabled && healthy) {
    return {
      text: "$(circle-slash) CodeGemma",
      tooltip: withDetails("CodeGemma: completions off\nClick to turn them on."),
      command: TOGGLE_COMMAND,
      alert: false,
    };
  }
  switch (status.state) {
    case "error":
      return {
        text: "$(error) CodeGemma",
        tooltip: withDetails(`CodeGemma: ${status.message || "error"}\nClick to show the log.`),
        command: SHOW_LOG_COMMAND,
        alert: true,
      };
    case "stopped":
      return {
        text: "$(debug-disconnect) CodeGemma",
        tooltip: withDetails(
          `CodeGemma: the server stopped${status.message ? `: ${status.message}` : ""}\nClick to show the log.`,
        ),
        command: SHOW_LOG_COMMAND,
        alert: true,
      };
    case "downloading":
      return {
        text:
          typeof status.progress === "number"
            ? `$(cloud-download) CodeGemma ${Math.round(status.progress)}%`
            : "$(cloud-download) CodeGemma",
        tooltip: withDetails(
          `CodeGemma: downloading the model${typeof status.progress === "number" ? ` (${Math.round(status.progress)}%)` : ""}; it is fetched once`,
        ),
        command: SHOW_LOG_COMMAND,
        alert: false,
      };
    case "starting":
    case "loading":
      return {
        text: "$(loading~spin) CodeGemma",
        tooltip: withDetails(
          status.state === "starting" ? "CodeGemma: starting the server" : "CodeGemma: loading the model",
        ),
        command: SHOW_LOG_COMMAND,
        alert: false,
      };
    case "ready":
      return {
        text:
          (status.slow ? "$(watch) CodeGemma" : "$(check) CodeGemma") +
          (status.latencyMs === undefined ? "" : ` ${formatLatency(status.latencyMs)}`),
        tooltip: withDetails(
          status.slow && status.message
            ? `CodeGemma: ready, but slow: ${status.message}\nClick to turn completions off.`
            : "CodeGemma: ready\nClick to turn completions off.",
        ),
        command: TOGGLE_COMMAND,
        alert: false,
      };
  }
}
