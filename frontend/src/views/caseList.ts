// The worklist: the cases the user may see, first page first, "Load more" for the rest.

import { listCases } from "../api";
import type { Case } from "../api";
import { el } from "../dom";
import { formatDateTime, isOverdue } from "../format";
import { navigate, paths } from "../router";
import { caseStatusBadge, loadingBlock, priorityBadge, showError } from "./common";
import type { Cleanup, ViewContext } from "./common";

export function renderCaseList(root: HTMLElement, ctx: ViewContext): Cleanup {
  const body = el("div", { class: "page-body" }, loadingBlock("Loading cases…"));
  const summary = el("span", { class: "muted", data: { testid: "case-count" } });
  root.replaceChildren(
    el("section", { class: "page" }, el("div", { class: "page-title" }, el("h1", {}, "Worklist"), summary), body),
  );

  const tbody = el("tbody");
  const table = el(
    "table",
    { class: "data-table case-table", data: { testid: "case-table" } },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Accession", "Patient", "Organ", "Priority", "Status", "Received", "Due"].map((h) =>
          el("th", { attrs: { scope: "col" } }, h),
        ),
      ),
    ),
    tbody,
  );
  const more = el("button", { class: "btn", attrs: { type: "button" }, data: { testid: "case-load-more" } }, "Load more");
  let next: string | null = null;

  async function load(): Promise<void> {
    more.disabled = true;
    try {
      const page = await listCases(next ?? undefined);
      if (ctx.signal.aborted) return;
      if (!tbody.isConnected) {
        body.replaceChildren(page.count === 0 ? emptyState() : table);
        if (page.count > 0) body.append(more);
      }
      tbody.append(...page.results.map(caseRow));
      next = page.next;
      more.hidden = !next;
      summary.textContent = `${page.count} case${page.count === 1 ? "" : "s"}`;
    } catch (err) {
      await showError(body, err, ctx);
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", () => void load());
  void load();
  return () => {};
}

function emptyState(): HTMLElement {
  return el("p", { class: "empty", data: { testid: "case-empty" } }, "No cases in your departments yet.");
}

function caseRow(c: Case): HTMLTableRowElement {
  const overdue = isOverdue(c.due_at, c.status);
  const row = el(
    "tr",
    {
      class: `case-row priority-row-${c.priority}`,
      data: { testid: "case-row", "case-id": c.id, priority: c.priority, status: c.status },
    },
    el("td", {}, el("a", { class: "case-link", attrs: { href: paths.case(c.id) } }, c.accession_number)),
    el("td", {}, c.patient_pseudonym),
    el("td", {}, c.organ || "—"),
    el("td", {}, priorityBadge(c.priority)),
    el("td", {}, caseStatusBadge(c.status)),
    el("td", { class: "nowrap" }, formatDateTime(c.received_at)),
    el(
      "td",
      { class: overdue ? "nowrap overdue" : "nowrap", attrs: { title: overdue ? "Overdue" : null } },
      formatDateTime(c.due_at),
    ),
  );
  // The whole row opens the case; the accession link keeps it reachable by keyboard.
  row.addEventListener("click", (ev) => {
    if ((ev.target as Element).closest("a")) return;
    navigate(paths.case(c.id));
  });
  return row;
}
