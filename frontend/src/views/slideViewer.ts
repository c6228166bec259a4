// Full-window slide viewer: metadata side panel + OpenSeadragon + the "Ask OmniPath" panel.

import { getSlide } from "../api";
import type { Slide } from "../api";
import { el } from "../dom";
import {
  SLIDE_STATUS_LABEL,
  formatBytes,
  formatDateTime,
  formatDimensions,
  formatMpp,
  formatObjective,
  label,
} from "../format";
import { pollSlide } from "../poll";
import { paths } from "../router";
import { mountViewer } from "../viewer";
import type { SlideViewer } from "../viewer";
import { renderAskPanel } from "./askPanel";
import { backLink, errorBlock, loadingBlock, showError } from "./common";
import type { Cleanup, ViewContext } from "./common";

export function renderSlideViewer(root: HTMLElement, ctx: ViewContext, slideId: number): Cleanup {
  const panel = el("aside", { class: "viewer-panel", data: { testid: "viewer-panel" } }, loadingBlock("Loading slide…"));
  const stage = el("div", { class: "viewer-stage" });
  const askSide = el("aside", { class: "ask-side", attrs: { hidden: true, "aria-label": "Ask OmniPath" } });
  root.replaceChildren(el("div", { class: "viewer-layout" }, panel, stage, askSide));

  let viewer: SlideViewer | null = null;
  let closeAsk: Cleanup | null = null;

  function open(slide: Slide): void {
    panel.replaceChildren(...slidePanel(slide));
    if (slide.status === "failed") {
      stage.replaceChildren(errorBlock(slide.error || "Processing failed.", "viewer-error"));
      return;
    }
    if (slide.status !== "ready" || !slide.dzi_url) {
      stage.replaceChildren(loadingBlock("The slide is still being processed…"));
      return;
    }
    const container = el("div", { class: "viewer", attrs: { id: "viewer" }, data: { testid: "viewer" } });
    stage.replaceChildren(container);
    viewer = mountViewer(container, {
      dziUrl: slide.dzi_url,
      mppX: slide.mpp_x,
      objectivePower: slide.objective_power,
      onError: (message) => container.append(errorBlock(message, "viewer-error")),
    });
    closeAsk?.();
    askSide.hidden = false;
    closeAsk = renderAskPanel(askSide, { slide, ctx, viewer });
  }

  void (async () => {
    try {
      let slide = await getSlide(slideId);
      if (ctx.signal.aborted) return;
      open(slide);
      if (slide.status === "pending") {
        const settled = await pollSlide(slideId, ctx.signal, () => {});
        if (!settled || ctx.signal.aborted) return;
        slide = settled;
        open(slide);
      }
    } catch (err) {
      if (ctx.signal.aborted) return;
      if (panel.querySelector(".loading")) panel.replaceChildren(backLink(paths.cases(), "Worklist"));
      const body = el("div", { class: "viewer-message" });
      stage.replaceChildren(body);
      await showError(body, err, ctx);
    }
  })();

  return () => {
    closeAsk?.();
    closeAsk = null;
    viewer?.destroy();
    viewer = null;
  };
}

function slidePanel(slide: Slide): HTMLElement[] {
  const rows: [string, string][] = [
    ["Status", label(SLIDE_STATUS_LABEL, slide.status)],
    ["Stain", slide.stain || "—"],
    ["Dimensions", formatDimensions(slide.width, slide.height)],
    ["Resolution", formatMpp(slide.mpp_x, slide.mpp_y)],
    ["Objective", formatObjective(slide.objective_power)],
    ["Format", slide.format || "—"],
    ["File size", formatBytes(slide.size)],
    ["Uploaded", formatDateTime(slide.created_at)],
  ];
  const scaleNote =
    slide.status === "ready" && !slide.mpp_x
      ? el("p", { class: "note", data: { testid: "scale-unknown" } }, "No scale bar: the file does not record microns per pixel.")
      : null;
  return [
    backLink(paths.case(slide.case), "Case"),
    el("h1", { class: "slide-title", attrs: { title: slide.filename }, data: { testid: "slide-name" } }, slide.filename),
    el(
      "dl",
      { class: "fields fields-stacked", data: { testid: "slide-metadata" } },
      ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
      el("dt", {}, "SHA-256"),
      el("dd", { class: "mono", attrs: { title: slide.sha256 } }, slide.sha256 ? `${slide.sha256.slice(0, 16)}…` : "—"),
    ),
    scaleNote,
  ].filter((n): n is HTMLElement => n !== null);
}
