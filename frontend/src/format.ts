// Display formatting shared by the views.

import type { AnalysisPhase, AnalysisStatus, CaseStatus, Priority, SlideStatus } from "./api";

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

export function isOverdue(dueIso: string | null, status: CaseStatus, now = Date.now()): boolean {
  if (!dueIso || status === "signed_out") return false;
  const due = new Date(dueIso).getTime();
  return !Number.isNaN(due) && due < now;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDimensions(width: number | null, height: number | null): string {
  if (!width || !height) return "unknown";
  return `${width.toLocaleString()} × ${height.toLocaleString()} px`;
}

export function formatMpp(mppX: number | null, mppY: number | null): string {
  if (!mppX) return "unknown";
  const x = mppX.toFixed(4);
  if (mppY && Math.abs(mppY - mppX) > 1e-6) return `${x} × ${mppY.toFixed(4)} µm/px`;
  return `${x} µm/px`;
}

export function formatObjective(power: number | null): string {
  if (!power) return "unknown";
  return `${Number.isInteger(power) ? power : power.toFixed(1)}×`;
}

/** A length in micrometres as a person would write it on a scale bar. */
export function formatLength(um: number): string {
  if (um >= 1000) return `${trim(um / 1000)} mm`;
  if (um >= 1) return `${trim(um)} µm`;
  return `${trim(um * 1000)} nm`;
}

function trim(n: number): string {
  return String(Number(n.toPrecision(3)));
}

export const PRIORITY_LABEL: Record<Priority, string> = {
  routine: "Routine",
  urgent: "Urgent",
  stat: "STAT",
};

export const CASE_STATUS_LABEL: Record<CaseStatus, string> = {
  received: "Received",
  in_review: "In review",
  signed_out: "Signed out",
};

export const SLIDE_STATUS_LABEL: Record<SlideStatus, string> = {
  pending: "Processing…",
  ready: "Ready",
  failed: "Failed",
};

export const ANALYSIS_STATUS_LABEL: Record<AnalysisStatus, string> = {
  queued: "Queued",
  running: "Running",
  succeeded: "Answered",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const ANALYSIS_PHASE_LABEL: Record<AnalysisPhase, string> = {
  queued: "Waiting for a model worker",
  extracting: "Reading the slide",
  selecting: "Selecting regions to look at closely",
  generating: "Writing the answer",
  done: "Done",
};

/** OmniPath's tasks (the model lists the ones it answers; unknown ones show their raw name). */
export const ANALYSIS_TASK_LABEL: Record<string, string> = {
  describe: "Describe the slide",
  cancer_detection: "Cancer detection",
  grading: "Grading",
  vascular_invasion: "Vascular invasion",
  neural_invasion: "Neural invasion",
  segmentation: "Segmentation",
  question: "Free question",
};

/** Label for a value the server may extend later: fall back to the raw value. */
export function label<K extends string>(table: Record<K, string>, value: string): string {
  return (table as Record<string, string>)[value] ?? value;
}
