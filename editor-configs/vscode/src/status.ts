// What the status-bar item says, as a pure function of what the extension knows.

/** `downloading`, `loading`, `ready` and `error` come from the server's `codegemma/status`; the rest from the client. */
export type ServerState = "starting" | "downloading" | "loading" | "ready" | "error" | "stopped";

export interface StatusNotification {
  state: "downloading" | "loading" | "ready" | "error";
  model?: string | null;
  message?: string | null;
  /** While downloading: the percentage fetched. */
  progress?: number | null;
}

export interface StatusModel {
  state: ServerState;
  enabled: boolean;
  model?: string | null;
  message?: string | null;
  progress?: number | null;
  latencyMs?: number;
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

export function describeStatus(status: StatusModel): StatusView {
  const details: string[] = [];
  if (status.model) {
    details.push(`Model: ${status.model}`);
  }
  if (status.latencyMs !== undefined) {
    details.push(`Last completion: ${formatLatency(status.latencyMs)}`);
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
          status.latencyMs === undefined
            ? "$(check) CodeGemma"
            : `$(check) CodeGemma ${formatLatency(status.latencyMs)}`,
        tooltip: withDetails("CodeGemma: ready\nClick to turn completions off."),
        command: TOGGLE_COMMAND,
        alert: false,
      };
  }
}
