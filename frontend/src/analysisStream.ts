// Watch an analysis job's answer as it is written: `/ws/analyses/<id>/`, reconnecting after an
// unexpected close with `?after=<last seq>` so the text arrives in order, without gaps or repeats.

import { websocketUrl } from "./api";
import type { AnalysisPhase, AnalysisRegion, AnalysisStatus } from "./api";

/**
 * Server → client messages. `seq` numbers every logged message 1, 2, 3, … over the job's life; it is
 * null on the state the server sends when the job has no log (never started, or its log expired).
 */
export type StreamMessage =
  | { type: "status"; seq: number | null; status: AnalysisStatus; phase: AnalysisPhase; progress: number }
  | { type: "token"; seq: number; text: string; at: number }
  | { type: "restart"; seq: number }
  | {
      type: "done";
      seq: number | null;
      status: AnalysisStatus;
      text: string;
      regions: AnalysisRegion[];
      model: string;
      demo_weights: boolean;
    }
  | { type: "error"; seq: number | null; error: string };

export type ConnectionState = "connecting" | "open" | "reconnecting" | "ended";

export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_NOT_FOUND = 4404;

export interface StreamHandlers {
  onMessage(message: StreamMessage): void;
  onConnection?(state: ConnectionState, detail: { attempt: number; delayMs: number }): void;
  /** The server refused the watch for good (4401 no session, 4404 no such job / not yours). */
  onRefused?(code: number): void;
}

export interface AnalysisWatch {
  /** The last sequence number received (0 before any). */
  readonly lastSeq: number;
  close(): void;
}

/** First retry after this long; doubled per failed try up to the cap, with jitter. */
export const RECONNECT_BASE_MS = 500;
export const RECONNECT_MAX_MS = 10_000;

export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempt);
  // Half fixed, half random: many browsers dropped by one server restart do not return in step.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

const KNOWN_TYPES = new Set(["status", "token", "restart", "done", "error"]);

function parse(data: unknown): StreamMessage | null {
  if (typeof data !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (!value || typeof value !== "object") return null;
  const type = (value as { type?: unknown }).type;
  return typeof type === "string" && KNOWN_TYPES.has(type) ? (value as StreamMessage) : null;
}

/**
 * Open the job's stream from its start and keep it open until `done`/`error`, a refusal, or `close()`.
 * Messages already seen (seq ≤ the last one) are dropped, so a replayed backlog never repeats text.
 */
export function watchAnalysis(streamPath: string, handlers: StreamHandlers): AnalysisWatch {
  let lastSeq = 0;
  let socket: WebSocket | null = null;
  let timer: number | undefined;
  let failures = 0;
  let stopped = false;

  function end(): void {
    stopped = true;
    window.clearTimeout(timer);
    const open = socket;
    socket = null;
    if (open && open.readyState <= WebSocket.OPEN) open.close(1000);
  }

  function connect(): void {
    const url = websocketUrl(lastSeq > 0 ? `${streamPath}?after=${lastSeq}` : streamPath);
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket === ws) handlers.onConnection?.("open", { attempt: failures, delayMs: 0 });
    });
    ws.addEventListener("message", (ev) => {
      if (socket !== ws) return;
      const message = parse(ev.data);
      if (!message) return;
      if (typeof message.seq === "number") {
        if (message.seq <= lastSeq) return;
        lastSeq = message.seq;
      }
      // Messages are flowing: the next drop starts over at the shortest delay.
      failures = 0;
      const last = message.type === "done" || message.type === "error";
      handlers.onMessage(message);
      if (last && !stopped) {
        end();
        handlers.onConnection?.("ended", { attempt: 0, delayMs: 0 });
      }
    });
    ws.addEventListener("close", (ev) => {
      if (socket !== ws || stopped) return;
      socket = null;
      if (ev.code === CLOSE_UNAUTHENTICATED || ev.code === CLOSE_NOT_FOUND) {
        stopped = true;
        handlers.onConnection?.("ended", { attempt: 0, delayMs: 0 });
        handlers.onRefused?.(ev.code);
        return;
      }
      const delayMs = reconnectDelay(failures);
      failures += 1;
      handlers.onConnection?.("reconnecting", { attempt: failures, delayMs });
      timer = window.setTimeout(() => {
        if (!stopped) connect();
      }, delayMs);
    });
  }

  handlers.onConnection?.("connecting", { attempt: 0, delayMs: 0 });
  connect();
  return {
    get lastSeq() {
      return lastSeq;
    },
    close: end,
  };
}
