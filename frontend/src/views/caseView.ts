// One case: its fields, its slides (polled while processing) and the slide upload form.

import { getCase, listSlides, uploadSlide } from "../api";
import type { Case, Slide } from "../api";
import { el } from "../dom";
import {
  SLIDE_STATUS_LABEL,
  formatBytes,
  formatDateTime,
  formatDimensions,
  formatMpp,
  isOverdue,
  label,
} from "../format";
import { pollSlide } from "../poll";
import { paths } from "../router";
import { backLink, caseStatusBadge, describeError, loadingBlock, priorityBadge, showError } from "./common";
import type { Cleanup, ViewContext } from "./common";

export function renderCaseView(root: HTMLElement, ctx: ViewContext, caseId: number): Cleanup {
  const page = el("section", { class: "page" }, backLink(paths.cases(), "Worklist"), loadingBlock("Loading case…"));
  root.replaceChildren(page);

  void (async () => {
    try {
      const [c, slides] = await Promise.all([getCase(caseId), listSlides(caseId)]);
      if (ctx.signal.aborted) return;
      page.replaceChildren(
        backLink(paths.cases(), "Worklist"),
        caseHeader(c),
        caseDetails(c, ctx),
        new SlidesSection(c, slides, ctx).element,
      );
    } catch (err) {
      const body = el("div");
      page.replaceChildren(backLink(paths.cases(), "Worklist"), body);
      await showError(body, err, ctx);
    }
  })();

  // Polls and in-flight fetches stop through ctx.signal.
  return () => {};
}

function caseHeader(c: Case): HTMLElement {
  return el(
    "div",
    { class: "page-title" },
    el("h1", { data: { testid: "case-accession" } }, c.accession_number),
    priorityBadge(c.priority),
    caseStatusBadge(c.status),
  );
}

function caseDetails(c: Case, ctx: ViewContext): HTMLElement {
  const department = ctx.user.departments.find((d) => d.id === c.department)?.name ?? `#${c.department}`;
  const assignee = c.assignee === null ? "Unassigned" : c.assignee === ctx.user.id ? "You" : `User #${c.assignee}`;
  const overdue = isOverdue(c.due_at, c.status);
  const rows: [string, string | HTMLElement][] = [
    ["Patient", c.patient_pseudonym],
    ["Organ", c.organ || "—"],
    ["Department", department],
    ["Assignee", assignee],
    ["Received", formatDateTime(c.received_at)],
    [
      "Due",
      el("span", { class: overdue ? "overdue" : "" }, formatDateTime(c.due_at), overdue ? " (overdue)" : ""),
    ],
  ];
  return el(
    "div",
    { class: "panel case-details", data: { testid: "case-details" } },
    el("dl", { class: "fields" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h2", { class: "subhead" }, "Clinical notes"),
    el("p", { class: "notes" }, c.clinical_notes || "None."),
  );
}

class SlidesSection {
  readonly element: HTMLElement;
  private readonly grid: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly cards = new Map<number, HTMLElement>();

  constructor(
    private readonly caseRecord: Case,
    slides: Slide[],
    private readonly ctx: ViewContext,
  ) {
    this.grid = el("div", { class: "slide-grid", data: { testid: "slide-list" } });
    this.empty = el("p", { class: "empty" }, "No slides yet. Upload one below.");
    this.element = el(
      "section",
      { class: "slides-section" },
      el("h2", {}, "Slides"),
      this.empty,
      this.grid,
      this.uploadForm(),
    );
    for (const slide of slides) this.add(slide);
    this.refreshEmpty();
  }

  private add(slide: Slide): void {
    const card = slideCard(slide);
    this.cards.set(slide.id, card);
    this.grid.append(card);
    this.refreshEmpty();
    if (slide.status === "pending") this.watch(slide.id);
  }

  private update(slide: Slide): void {
    const old = this.cards.get(slide.id);
    const card = slideCard(slide);
    this.cards.set(slide.id, card);
    if (old) old.replaceWith(card);
    else this.grid.append(card);
  }

  private watch(id: number): void {
    pollSlide(id, this.ctx.signal, (s) => this.update(s)).catch((err: unknown) => {
      if (this.ctx.signal.aborted) return;
      const card = this.cards.get(id);
      card?.querySelector(".slide-status")?.replaceChildren(
        el("span", { class: "slide-error" }, `Could not check progress: ${describeError(err)}`),
      );
    });
  }

  private refreshEmpty(): void {
    this.empty.hidden = this.cards.size > 0;
  }

  private uploadForm(): HTMLElement {
    const input = el("input", {
      attrs: { id: "upload-input", type: "file", name: "file" },
      data: { testid: "upload-input" },
    });
    const submit = el(
      "button",
      { class: "btn btn-primary", attrs: { type: "submit" }, data: { testid: "upload-submit" } },
      "Upload",
    );
    const progress = el("progress", { attrs: { max: 1, value: 0 } });
    const progressText = el("span", { class: "progress-text" });
    const progressBox = el(
      "div",
      { class: "upload-progress", attrs: { hidden: true }, data: { testid: "upload-progress" } },
      progress,
      progressText,
    );
    const error = el("p", { class: "form-error", attrs: { role: "alert", hidden: true }, data: { testid: "upload-error" } });

    const form = el(
      "form",
      { class: "panel upload-form", data: { testid: "upload-form" } },
      el("label", { attrs: { for: "upload-input" } }, "Add a slide to this case"),
      el("div", { class: "upload-row" }, input, submit),
      progressBox,
      error,
    );

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      const file = input.files?.[0];
      if (!file) {
        showUploadError("Choose a slide file first.");
        return;
      }
      submit.disabled = true;
      input.disabled = true;
      progressBox.hidden = false;
      setProgress(0, file.size);
      try {
        const slide = await uploadSlide(this.caseRecord.id, file, (f) => setProgress(f, file.size)).promise;
        if (this.ctx.signal.aborted) return;
        form.reset();
        // The 201 body may be partial; polling fills in the rest.
        this.add({ ...slide, filename: slide.filename || file.name });
      } catch (err) {
        if (this.ctx.signal.aborted) return;
        showUploadError(describeError(err));
      } finally {
        submit.disabled = false;
        input.disabled = false;
        progressBox.hidden = true;
      }
    });

    function setProgress(fraction: number | null, total: number): void {
      if (fraction === null) {
        progress.removeAttribute("value"); // indeterminate
        progressText.textContent = "Uploading…";
        return;
      }
      progress.value = fraction;
      progressText.textContent =
        fraction >= 1
          ? "Upload complete, waiting for the server…"
          : `Uploading ${Math.round(fraction * 100)} % of ${formatBytes(total)}`;
    }

    function showUploadError(message: string): void {
      error.textContent = message;
      error.hidden = false;
    }

    return form;
  }
}

function slideCard(slide: Slide): HTMLElement {
  const ready = slide.status === "ready";
  const viewerHref = paths.slide(slide.id);

  const thumb =
    ready && slide.thumbnail_url
      ? el(
          "a",
          { class: "slide-thumb", attrs: { href: viewerHref, tabindex: -1, "aria-hidden": "true" } },
          el("img", { attrs: { src: slide.thumbnail_url, alt: "", loading: "lazy" } }),
        )
      : el("div", { class: "slide-thumb placeholder" }, slide.status === "failed" ? "No preview" : "");

  let status: HTMLElement;
  if (slide.status === "pending") {
    status = el("div", { class: "slide-status pending" }, el("span", { class: "spinner" }), label(SLIDE_STATUS_LABEL, slide.status));
  } else if (slide.status === "failed") {
    status = el(
      "div",
      { class: "slide-status failed" },
      el("p", { class: "slide-error", data: { testid: "slide-error" } }, slide.error || "Processing failed."),
    );
  } else {
    status = el(
      "div",
      { class: "slide-status ready" },
      el("span", { class: "muted" }, formatDimensions(slide.width, slide.height)),
      el("span", { class: "muted" }, formatMpp(slide.mpp_x, slide.mpp_y)),
    );
  }

  return el(
    "article",
    { class: `slide-card slide-${slide.status}`, data: { testid: "slide-card", "slide-id": slide.id, status: slide.status } },
    thumb,
    el(
      "div",
      { class: "slide-info" },
      el("h3", { class: "slide-name", attrs: { title: slide.filename } }, slide.filename),
      el("div", { class: "muted small" }, [slide.stain, formatBytes(slide.size)].filter(Boolean).join(" · ")),
      status,
      ready ? el("a", { class: "btn btn-small", attrs: { href: viewerHref }, data: { testid: "slide-open" } }, "Open viewer") : null,
    ),
  );
}
