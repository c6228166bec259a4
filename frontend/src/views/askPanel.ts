// "Ask OmniPath" beside the slide viewer: the question form, one job's answer as it is written (with
// the regions the model looked at drawn on the slide), and the slide's earlier analyses.

import {
  ApiError,
  cancelAnalysis,
  createAnalysis,
  currentUser,
  getAnalysis,
  getModelInfo,
  listAnalyses,
} from "../api";
import type { Analysis, AnalysisRequest, Box, ModelInfo, Slide } from "../api";
import { CLOSE_UNAUTHENTICATED, watchAnalysis } from "../analysisStream";
import type { AnalysisWatch, ConnectionState, StreamMessage } from "../analysisStream";
import { el } from "../dom";
import {
  ANALYSIS_PHASE_LABEL,
  ANALYSIS_STATUS_LABEL,
  ANALYSIS_TASK_LABEL,
  formatDateTime,
  label,
} from "../format";
import type { BoxOverlay, SlideViewer } from "../viewer";
import { describeError, loadingBlock } from "./common";
import type { Cleanup, ViewContext } from "./common";

/** OmniPath's tasks (inference/config.py), offered only when the server cannot say which it answers. */
const FALLBACK_TASKS = [
  "describe",
  "cancer_detection",
  "grading",
  "vascular_invasion",
  "neural_invasion",
  "segmentation",
  "question",
];
/** Shown when an answer is marked `demo_weights` but came without the server's own notice (stream `done`). */
const FALLBACK_NOTICE = "demo weights: a tiny randomly initialised model wrote this text; it is noise, not a diagnosis";
const ACTIVE = new Set(["queued", "running"]);

export interface AskPanelOptions {
  slide: Slide;
  ctx: ViewContext;
  viewer: SlideViewer;
}

export function renderAskPanel(root: HTMLElement, opts: AskPanelOptions): Cleanup {
  const panel = new AskPanel(opts);
  root.replaceChildren(panel.element);
  return () => panel.close();
}

function taskLabel(task: string): string {
  return label(ANALYSIS_TASK_LABEL, task);
}

function formatBox(box: Box): string {
  const [x, y, w, h] = box.map((v) => Math.round(v));
  return `${w!.toLocaleString()} × ${h!.toLocaleString()} px at (${x!.toLocaleString()}, ${y!.toLocaleString()})`;
}

function isActive(job: Analysis): boolean {
  return ACTIVE.has(job.status);
}

/** A 4401 may mean the session expired: hand over to the login form if so. */
async function checkSession(ctx: ViewContext): Promise<void> {
  const user = await currentUser().catch(() => ctx.user);
  if (!ctx.signal.aborted && !user) ctx.onAuthLost();
}

class AskPanel {
  readonly element: HTMLElement;
  private readonly ctx: ViewContext;
  private readonly slide: Slide;
  private readonly viewer: SlideViewer;
  private readonly jobSlot: HTMLElement;
  private readonly history: HistoryList;
  private readonly form: AskForm;
  private job: JobView | null = null;

  constructor(opts: AskPanelOptions) {
    this.ctx = opts.ctx;
    this.slide = opts.slide;
    this.viewer = opts.viewer;
    this.jobSlot = el(
      "div",
      { class: "ask-job-slot" },
      el("p", { class: "muted small", data: { testid: "ask-placeholder" } }, "Ask a question, or open an earlier answer below."),
    );
    this.history = new HistoryList(this.slide.id, this.ctx, (job) => this.show(job));
    this.form = new AskForm(this.slide, this.ctx, this.viewer, (job) => {
      this.history.upsert(job, true);
      this.show(job);
    });
    this.element = el(
      "div",
      { class: "ask", data: { testid: "ask-panel" } },
      el("h2", { class: "ask-title" }, "Ask OmniPath"),
      this.form.element,
      this.jobSlot,
      this.history.element,
    );
    void this.form.load();
    void this.history.load();
  }

  show(job: Analysis): void {
    this.job?.close();
    this.job = new JobView(job, this.ctx, this.viewer, (changed) => this.history.upsert(changed, false));
    this.jobSlot.replaceChildren(this.job.element);
    this.history.select(job.id);
  }

  close(): void {
    this.job?.close();
    this.job = null;
  }
}

// --- the question form ----------------------------------------------------------------------------

class AskForm {
  readonly element: HTMLFormElement;
  private readonly task: HTMLSelectElement;
  private readonly prompt: HTMLTextAreaElement;
  private readonly counter: HTMLElement;
  private readonly limitView: HTMLInputElement;
  private readonly maxTokens: HTMLInputElement;
  private readonly submit: HTMLButtonElement;
  private readonly error: HTMLElement;
  private readonly modelNote: HTMLElement;
  private promptLimit: number | null = null;

  constructor(
    private readonly slide: Slide,
    private readonly ctx: ViewContext,
    private readonly viewer: SlideViewer,
    private readonly onCreated: (job: Analysis) => void,
  ) {
    this.task = el("select", { attrs: { id: "ask-task", name: "task", disabled: true }, data: { testid: "ask-task" } });
    this.prompt = el("textarea", {
      attrs: {
        id: "ask-prompt",
        name: "prompt",
        rows: 3,
        placeholder: "e.g. Is there invasive carcinoma? Where?",
      },
      data: { testid: "ask-prompt" },
    });
    this.counter = el("span", { class: "ask-counter", attrs: { "aria-live": "polite" }, data: { testid: "ask-prompt-count" } });
    this.limitView = el("input", { attrs: { id: "ask-limit-view", type: "checkbox" }, data: { testid: "ask-limit-view" } });
    this.maxTokens = el("input", {
      attrs: { id: "ask-max-tokens", type: "number", min: 1, step: 1, inputmode: "numeric", placeholder: "model default" },
      data: { testid: "ask-max-tokens" },
    });
    this.submit = el("button", { class: "btn btn-primary", attrs: { type: "submit" }, data: { testid: "ask-submit" } }, "Ask");
    this.error = el("p", { class: "form-error", attrs: { role: "alert", hidden: true }, data: { testid: "ask-error" } });
    this.modelNote = el("div", { class: "ask-model-note" });

    this.element = el(
      "form",
      { class: "ask-form", attrs: { novalidate: true }, data: { testid: "ask-form" } },
      this.modelNote,
      el("label", { attrs: { for: "ask-task" } }, "Task"),
      this.task,
      el("label", { attrs: { for: "ask-prompt" } }, "Question"),
      this.prompt,
      this.counter,
      el(
        "label",
        { class: "ask-check", attrs: { title: "Send the part of the slide on screen now as the region to analyse" } },
        this.limitView,
        "Limit to the current view",
      ),
      el("label", { attrs: { for: "ask-max-tokens" } }, "Longest answer (tokens)"),
      this.maxTokens,
      el("div", { class: "ask-actions" }, this.submit),
      this.error,
    );

    this.prompt.addEventListener("input", () => this.updateCounter());
    this.prompt.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        this.element.requestSubmit();
      }
    });
    this.element.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.ask();
    });
    this.updateCounter();
  }

  /** The tasks and limits of the configured model. */
  async load(): Promise<void> {
    let model: ModelInfo | null = null;
    let problem: string | null = null;
    try {
      model = await getModelInfo();
    } catch (err) {
      problem = `The model's task list could not be read (${describeError(err)}); showing OmniPath's standard tasks.`;
    }
    if (this.ctx.signal.aborted) return;
    const tasks = model && model.tasks.length > 0 ? model.tasks : FALLBACK_TASKS;
    this.task.replaceChildren(...tasks.map((t) => el("option", { attrs: { value: t } }, taskLabel(t))));
    this.task.value = tasks.includes("question") ? "question" : (tasks[0] ?? "");
    this.task.disabled = false;
    if (model && !model.available && model.problem) problem = `The model is not available: ${model.problem}`;
    this.promptLimit = model?.prompt_max_chars ?? null;
    if (model?.max_new_tokens_limit) this.maxTokens.max = String(model.max_new_tokens_limit);
    this.updateCounter();
    const notes: HTMLElement[] = [];
    if (model?.demo_weights) {
      notes.push(
        el(
          "p",
          { class: "ask-notice ask-notice-small", attrs: { role: "note" }, data: { testid: "ask-model-notice" } },
          el("strong", {}, "Demo model. "),
          `${model.name} has untrained demo weights: its answers are noise, not a diagnosis.`,
        ),
      );
    }
    if (problem) notes.push(el("p", { class: "form-error", data: { testid: "ask-model-problem" } }, problem));
    this.modelNote.replaceChildren(...notes);
  }

  private updateCounter(): void {
    // Characters as the server counts them (code points, surrounding whitespace stripped).
    const length = Array.from(this.prompt.value.trim()).length;
    const limit = this.promptLimit;
    const over = limit !== null && length > limit;
    this.counter.textContent =
      limit === null ? `${length.toLocaleString()} characters` : `${length.toLocaleString()} / ${limit.toLocaleString()}`;
    this.counter.classList.toggle("over", over);
    this.counter.title = over ? "Longer than the server accepts" : "";
  }

  private showError(message: string): void {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  private async ask(): Promise<void> {
    if (this.submit.disabled) return;
    this.error.hidden = true;
    const body: AnalysisRequest = { slide: this.slide.id, task: this.task.value, prompt: this.prompt.value };
    if (this.limitView.checked) {
      const region = this.viewer.visibleRegion();
      if (!region) {
        this.showError("The slide is not on screen: pan back to it, or untick “Limit to the current view”.");
        return;
      }
      body.region = region;
    }
    const tokens = this.maxTokens.value.trim();
    if (tokens) body.max_new_tokens = Number(tokens);
    // The server checks everything (prompt length, task, limits); its message is shown as it is.
    this.submit.disabled = true;
    this.submit.setAttribute("aria-busy", "true");
    try {
      const job = await createAnalysis(body);
      if (this.ctx.signal.aborted) return;
      this.onCreated(job);
    } catch (err) {
      if (this.ctx.signal.aborted) return;
      if (err instanceof ApiError && err.isAuth) await checkSession(this.ctx);
      this.showError(describeError(err));
    } finally {
      this.submit.disabled = false;
      this.submit.removeAttribute("aria-busy");
    }
  }
}

// --- one job, live ----------------------------------------------------------------------------------

class JobView {
  readonly element: HTMLElement;
  private job: Analysis;
  private watch: AnalysisWatch | null = null;
  private closed = false;
  private tokens = 0;
  private readonly answer: HTMLElement;
  private readonly answerText: Text;
  private readonly status: HTMLElement;
  private readonly progress: HTMLProgressElement;
  private readonly progressText: HTMLElement;
  private readonly progressBox: HTMLElement;
  private readonly cancel: HTMLButtonElement;
  private readonly connection: HTMLElement;
  private readonly restartNote: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly error: HTMLElement;
  private readonly regions: HTMLElement;
  private readonly footer: HTMLElement;

  constructor(
    job: Analysis,
    private readonly ctx: ViewContext,
    private readonly viewer: SlideViewer,
    private readonly onChange: (job: Analysis) => void,
  ) {
    this.job = { ...job };
    this.status = el("span", { class: "badge", data: { testid: "ask-status" } });
    this.cancel = el(
      "button",
      { class: "btn btn-small", attrs: { type: "button" }, data: { testid: "ask-cancel" } },
      "Cancel",
    );
    this.progress = el("progress", { attrs: { max: 1, value: 0 } });
    this.progressText = el("span", { class: "progress-text" });
    this.progressBox = el("div", { class: "ask-progress", data: { testid: "ask-progress" } }, this.progress, this.progressText);
    this.connection = el("p", { class: "ask-connection", attrs: { role: "status", hidden: true }, data: { testid: "ask-connection" } });
    this.restartNote = el(
      "p",
      { class: "note ask-restart-note", attrs: { hidden: true }, data: { testid: "ask-restart-note" } },
      "The worker answering this was lost; the answer is being written again from the start.",
    );
    this.notice = el("div", { class: "ask-notice", attrs: { role: "note", hidden: true }, data: { testid: "ask-demo-notice" } });
    this.answerText = document.createTextNode(job.text);
    this.answer = el(
      "div",
      { class: "ask-answer", attrs: { "aria-live": "polite" }, data: { testid: "ask-answer" } },
      this.answerText,
    );
    this.error = el("p", { class: "form-error", attrs: { role: "alert", hidden: true }, data: { testid: "ask-job-error" } });
    this.regions = el("div", { class: "ask-regions", data: { testid: "ask-regions" } });
    this.footer = el("p", { class: "muted small ask-model", data: { testid: "ask-model" } });
    const asker = job.requester === ctx.user.id ? "you" : (job.requester_name ?? "a former user");

    this.element = el(
      "section",
      { class: "ask-job", data: { testid: "ask-job", "job-id": job.id } },
      el("div", { class: "ask-job-head" }, el("span", { class: "ask-task" }, taskLabel(job.task)), this.status, this.cancel),
      el("p", { class: "ask-question", data: { testid: "ask-question" } }, job.prompt),
      el(
        "p",
        { class: "muted small" },
        `Asked by ${asker}, ${formatDateTime(job.created_at)} · `,
        job.region ? `limited to ${formatBox(job.region)}` : "whole slide",
      ),
      this.progressBox,
      this.connection,
      this.restartNote,
      this.notice,
      this.answer,
      this.error,
      this.regions,
      this.footer,
    );
    this.cancel.addEventListener("click", () => void this.requestCancel());
    this.render();
    this.drawRegions();
    if (isActive(job)) this.startWatching();
  }

  close(): void {
    this.closed = true;
    this.watch?.close();
    this.watch = null;
  }

  private startWatching(): void {
    this.watch = watchAnalysis(this.job.stream_url || `/ws/analyses/${this.job.id}/`, {
      onMessage: (message) => this.apply(message),
      onConnection: (state, detail) => this.showConnection(state, detail.delayMs),
      onRefused: (code) => {
        if (code === CLOSE_UNAUTHENTICATED) void checkSession(this.ctx);
        this.showError(
          code === CLOSE_UNAUTHENTICATED
            ? "Your session has ended: log in again to follow this answer."
            : "This analysis cannot be followed: it does not exist or you do not have access to it.",
        );
      },
    });
  }

  private apply(message: StreamMessage): void {
    if (this.closed) return;
    const job = this.job;
    const before = job.status;
    switch (message.type) {
      case "status":
        job.status = message.status;
        job.phase = message.phase;
        job.progress = message.progress;
        break;
      case "token":
        // Text only: model output never becomes markup.
        this.answerText.appendData(message.text);
        job.text = this.answerText.data;
        this.tokens += 1;
        break;
      case "restart":
        this.answerText.data = "";
        job.text = "";
        job.regions = [];
        this.tokens = 0;
        this.restartNote.hidden = false;
        this.drawRegions();
        break;
      case "done":
        job.status = message.status;
        job.phase = "done";
        job.text = message.text;
        this.answerText.data = message.text;
        job.regions = message.regions ?? [];
        job.model = message.model;
        job.demo_weights = job.demo_weights || message.demo_weights;
        this.drawRegions();
        void this.refresh();
        break;
      case "error":
        job.status = "failed";
        job.phase = "done";
        job.error = message.error;
        void this.refresh();
        break;
    }
    this.element.dataset.seq = String(this.watch?.lastSeq ?? message.seq ?? "");
    this.render();
    // The list row follows the status (not every token).
    if (job.status !== before) this.onChange({ ...job });
  }

  /** Once finished: the stored job (notice, masks saved, timings). */
  private async refresh(): Promise<void> {
    try {
      const stored = await getAnalysis(this.job.id);
      if (this.closed || this.ctx.signal.aborted || isActive(stored)) return;
      this.job = { ...stored };
      this.answerText.data = stored.text;
      this.drawRegions();
      this.render();
      this.onChange({ ...stored });
    } catch {
      // The streamed result is already shown.
    }
  }

  private async requestCancel(): Promise<void> {
    this.cancel.disabled = true;
    this.cancel.textContent = "Cancelling…";
    this.error.hidden = true;
    try {
      const job = await cancelAnalysis(this.job.id);
      if (this.closed) return;
      this.job.cancel_requested = true;
      if (!isActive(job)) {
        // Cancelled while queued: final at once (the stream says so too).
        this.job = { ...job };
        this.answerText.data = job.text;
        this.onChange({ ...job });
      }
      this.render();
    } catch (err) {
      if (this.closed) return;
      if (err instanceof ApiError && err.isAuth) await checkSession(this.ctx);
      this.cancel.disabled = false;
      this.cancel.textContent = "Cancel";
      this.showError(describeError(err));
    }
  }

  private showConnection(state: ConnectionState, delayMs: number): void {
    this.element.dataset.connection = state;
    if (state === "reconnecting") {
      this.connection.hidden = false;
      this.connection.textContent = `Connection lost; reconnecting in ${Math.max(1, Math.round(delayMs / 1000))} s…`;
    } else {
      this.connection.hidden = true;
    }
  }

  private showError(message: string): void {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  private render(): void {
    const job = this.job;
    const active = isActive(job);
    this.element.dataset.status = job.status;
    this.element.dataset.phase = job.phase;
    this.answer.dataset.tokens = String(this.tokens);
    this.answer.setAttribute("aria-busy", active ? "true" : "false");
    this.answer.classList.toggle("empty-answer", !this.answerText.data);
    this.status.className = `badge ask-status ask-status-${job.status}`;
    this.status.textContent = label(ANALYSIS_STATUS_LABEL, job.status);
    this.status.dataset.status = job.status;

    this.progressBox.hidden = !active;
    if (active) {
      const stopping = job.cancel_requested ? " (stopping…)" : "";
      this.progress.value = job.progress;
      this.progressText.textContent =
        job.phase === "queued"
          ? `${label(ANALYSIS_PHASE_LABEL, job.phase)}${stopping}`
          : `${label(ANALYSIS_PHASE_LABEL, job.phase)} · ${Math.round(job.progress * 100)} %${stopping}`;
    }
    this.cancel.hidden = !active;
    if (active && !job.cancel_requested) {
      this.cancel.disabled = false;
      this.cancel.textContent = "Cancel";
    } else if (active) {
      this.cancel.disabled = true;
      this.cancel.textContent = "Cancelling…";
    }

    // Untrained weights: say so beside the answer, every time, before anyone reads it.
    this.notice.hidden = !job.demo_weights;
    if (job.demo_weights) {
      this.notice.replaceChildren(el("strong", {}, "Not a diagnosis. "), job.notice || FALLBACK_NOTICE);
    }
    if (job.status === "failed") this.showError(job.error || "The analysis failed.");
    if (!active) this.connection.hidden = true;

    const notes: string[] = [];
    if (job.model) notes.push(`Model: ${job.model}`);
    if (job.attempt > 1) notes.push(`run ${job.attempt} times (a worker was lost)`);
    if (job.annotation_ids?.length) {
      notes.push(`${job.annotation_ids.length} mask${job.annotation_ids.length === 1 ? "" : "s"} saved as annotations`);
    }
    if (job.status === "cancelled") notes.push("cancelled: the text is what was written until then");
    this.footer.textContent = notes.join(" · ");
  }

  /** The regions the model read closely: on the slide (clickable) and as a list; the asked-about view dashed. */
  private drawRegions(): void {
    const job = this.job;
    const boxes: BoxOverlay[] = [];
    if (job.region) boxes.push({ box: job.region, kind: "roi", title: "The view this question was limited to" });
    const items = job.regions.map((region, index) => {
      const text = `Region ${index + 1} · score ${region.score.toFixed(2)} · ${region.magnification}×`;
      const zoom = (): void => this.viewer.zoomTo(region.box);
      boxes.push({ box: region.box, kind: "region", title: text, onClick: zoom });
      return el(
        "li",
        {},
        el(
          "button",
          {
            class: "btn btn-small ask-region",
            attrs: { type: "button", title: `Zoom to ${formatBox(region.box)}` },
            data: { testid: "ask-region", index },
            on: { click: zoom },
          },
          text,
        ),
      );
    });
    this.viewer.showBoxes(boxes);
    this.regions.replaceChildren(
      ...(items.length
        ? [el("p", { class: "small muted" }, "Regions the model looked at closely (click to zoom):"), el("ol", {}, ...items)]
        : []),
    );
  }
}

// --- earlier analyses of this slide -----------------------------------------------------------------

class HistoryList {
  readonly element: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly empty: HTMLElement;
  private readonly more: HTMLButtonElement;
  private readonly body: HTMLElement;
  private readonly rows = new Map<number, HTMLElement>();
  private next: string | null = null;
  private selected: number | null = null;

  constructor(
    private readonly slideId: number,
    private readonly ctx: ViewContext,
    private readonly onSelect: (job: Analysis) => void,
  ) {
    this.list = el("ol", { class: "ask-history-list" });
    this.empty = el("p", { class: "empty small", attrs: { hidden: true }, data: { testid: "ask-history-empty" } }, "No questions asked about this slide yet.");
    this.more = el("button", { class: "btn btn-small", attrs: { type: "button", hidden: true }, data: { testid: "ask-history-more" } }, "Load more");
    const refresh = el(
      "button",
      { class: "btn btn-small", attrs: { type: "button", title: "Reload the list" }, data: { testid: "ask-history-refresh" } },
      "Refresh",
    );
    this.body = el("div", {}, loadingBlock("Loading earlier answers…"));
    this.element = el(
      "section",
      { class: "ask-history", data: { testid: "ask-history" } },
      el("div", { class: "ask-history-head" }, el("h3", {}, "Earlier questions"), refresh),
      this.body,
    );
    this.more.addEventListener("click", () => void this.load(false));
    refresh.addEventListener("click", () => void this.load(true));
  }

  async load(reset = true): Promise<void> {
    this.more.disabled = true;
    try {
      const page = await listAnalyses(this.slideId, reset ? undefined : (this.next ?? undefined));
      if (this.ctx.signal.aborted) return;
      if (reset) {
        this.rows.clear();
        this.list.replaceChildren();
      }
      this.body.replaceChildren(this.empty, this.list, this.more);
      for (const job of page.results) this.upsert(job, false);
      this.next = page.next;
      this.more.hidden = !this.next;
      this.refreshEmpty();
    } catch (err) {
      if (this.ctx.signal.aborted) return;
      if (err instanceof ApiError && err.isAuth) await checkSession(this.ctx);
      this.body.replaceChildren(
        el("p", { class: "form-error", data: { testid: "ask-history-error" } }, `Earlier answers could not be loaded: ${describeError(err)}`),
      );
    } finally {
      this.more.disabled = false;
    }
  }

  /** Add or update a job's row (`prepend`: a new job goes on top, as the server orders them). */
  upsert(job: Analysis, prepend: boolean): void {
    const row = this.row(job);
    const old = this.rows.get(job.id);
    this.rows.set(job.id, row);
    if (old) old.replaceWith(row);
    else if (prepend) this.list.prepend(row);
    else this.list.append(row);
    this.refreshEmpty();
  }

  select(id: number): void {
    this.selected = id;
    for (const [jobId, row] of this.rows) {
      const button = row.querySelector("button");
      button?.setAttribute("aria-pressed", jobId === id ? "true" : "false");
      row.classList.toggle("selected", jobId === id);
    }
  }

  private refreshEmpty(): void {
    this.empty.hidden = this.rows.size > 0;
  }

  private row(job: Analysis): HTMLElement {
    const asker = job.requester === this.ctx.user.id ? "you" : (job.requester_name ?? "a former user");
    const button = el(
      "button",
      {
        class: "ask-history-item",
        attrs: { type: "button", "aria-pressed": job.id === this.selected ? "true" : "false" },
        data: { testid: "ask-history-item", "job-id": job.id, status: job.status },
      },
      el(
        "span",
        { class: "ask-history-line" },
        el("span", { class: "ask-task" }, taskLabel(job.task)),
        el("span", { class: `badge ask-status ask-status-${job.status}` }, label(ANALYSIS_STATUS_LABEL, job.status)),
      ),
      el("span", { class: "ask-history-prompt", attrs: { title: job.prompt } }, job.prompt),
      el(
        "span",
        { class: "muted small", data: { testid: "ask-history-asker" } },
        `${asker} · ${formatDateTime(job.created_at)}`,
      ),
    );
    button.addEventListener("click", async () => {
      // The list may be stale: show the job as it is now (and follow it if it is still running).
      button.disabled = true;
      try {
        const fresh = await getAnalysis(job.id);
        if (this.ctx.signal.aborted) return;
        this.upsert(fresh, false);
        this.onSelect(fresh);
      } catch (err) {
        if (this.ctx.signal.aborted) return;
        if (err instanceof ApiError && err.isAuth) await checkSession(this.ctx);
        button.title = describeError(err);
        button.classList.add("unavailable");
      } finally {
        button.disabled = false;
      }
    });
    return el("li", { class: job.id === this.selected ? "selected" : "" }, button);
  }
}
