// Pieces shared by the views: the view contract, loading/error blocks, badges.

import { ApiError, currentUser } from "../api";
import { el } from "../dom";
import { CASE_STATUS_LABEL, PRIORITY_LABEL, label } from "../format";
import type { User } from "../api";

/** Undo what a view set up (timers, viewers, listeners). Called before the next view renders. */
export type Cleanup = () => void;

export interface ViewContext {
  user: User;
  /** Aborted when the view is replaced; check it after every await. */
  signal: AbortSignal;
  /** The session is gone (expired, logged out elsewhere): go back to the login form. */
  onAuthLost: () => void;
}

export function loadingBlock(text = "Loading…"): HTMLElement {
  return el("div", { class: "loading", attrs: { role: "status" } }, el("span", { class: "spinner" }), text);
}

export function errorBlock(message: string, testid = "page-error"): HTMLElement {
  return el("div", { class: "error-block", attrs: { role: "alert" }, data: { testid } }, message);
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return "Something went wrong.";
}

/**
 * Report a failed request inside `target`. A 401/403 may mean the session expired: check, and
 * hand over to the login form if so; otherwise it is a real permission error and is shown.
 */
export async function showError(target: HTMLElement, err: unknown, ctx: ViewContext): Promise<void> {
  if (err instanceof ApiError && err.isAuth) {
    const user = await currentUser().catch(() => ctx.user);
    if (ctx.signal.aborted) return;
    if (!user) {
      ctx.onAuthLost();
      return;
    }
  }
  if (ctx.signal.aborted) return;
  const message =
    err instanceof ApiError && err.status === 404 ? "Not found, or you do not have access to it." : describeError(err);
  target.replaceChildren(errorBlock(message));
}

export function priorityBadge(priority: string): HTMLElement {
  return el(
    "span",
    { class: `badge priority priority-${priority}`, data: { priority } },
    label(PRIORITY_LABEL, priority),
  );
}

export function caseStatusBadge(status: string): HTMLElement {
  return el("span", { class: `badge status status-${status}`, data: { status } }, label(CASE_STATUS_LABEL, status));
}

export function backLink(href: string, text: string): HTMLElement {
  return el("a", { class: "back-link", attrs: { href }, data: { testid: "back-link" } }, `← ${text}`);
}
