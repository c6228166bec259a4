// OpenSeadragon on a DeepZoom source, with a scale bar, boxes drawn over the slide (level-0 px) and a
// "ready" signal for tests.

import OpenSeadragon from "openseadragon";
import type { Box } from "./api";
import { el } from "./dom";
import { formatLength } from "./format";

// OSD's navigation button images, bundled from the npm package as hashed files under /assets/
// (which Django serves): no CDN, no prefixUrl guessing, no broken image requests. Only the
// buttons we enable are bundled.
const buttonImages = import.meta.glob<string>(
  "../node_modules/openseadragon/build/openseadragon/images/{zoomin,zoomout,home,fullpage}_*.png",
  { eager: true, query: "?url&no-inline", import: "default" },
);

function image(name: string): string {
  const key = Object.keys(buttonImages).find((k) => k.endsWith(`/${name}.png`));
  if (!key) throw new Error(`OpenSeadragon image ${name}.png is missing from the bundle`);
  return buttonImages[key] as string;
}

function navButton(name: string): OpenSeadragon.NavImagesValues {
  return {
    REST: image(`${name}_rest`),
    GROUP: image(`${name}_grouphover`),
    HOVER: image(`${name}_hover`),
    DOWN: image(`${name}_pressed`),
  };
}

// OSD deep-merges navImages into its defaults and only builds the buttons that are enabled
// (rotation, flip and sequence controls are off), so the other entries are never used.
const NAV_IMAGES = {
  zoomIn: navButton("zoomin"),
  zoomOut: navButton("zoomout"),
  home: navButton("home"),
  fullpage: navButton("fullpage"),
} as Partial<OpenSeadragon.NavImages> as OpenSeadragon.NavImages;

export interface ViewerOptions {
  dziUrl: string;
  /** Microns per level-0 pixel; null when the slide does not say (then no scale bar). */
  mppX: number | null;
  /** Scanner objective; used to show the equivalent magnification. */
  objectivePower: number | null;
  onReady?: () => void;
  onError?: (message: string) => void;
}

/** A box drawn over the slide (level-0 px); `kind` picks its style and test id. */
export interface BoxOverlay {
  box: Box;
  kind: "region" | "roi";
  /** Tooltip text. */
  title: string;
  /** Called on a click (not a drag) on the box. */
  onClick?: () => void;
}

export interface SlideViewer {
  destroy(): void;
  /** The part of the slide on screen as a level-0 box, clamped to the slide; null before it opens or when off-slide. */
  visibleRegion(): Box | null;
  /** Replace the boxes drawn over the slide (an empty list clears them). */
  showBoxes(boxes: BoxOverlay[]): void;
  /** Pan and zoom so that `box` (level-0 px) fills the view, with a margin. */
  zoomTo(box: Box): void;
}

/** Widest the scale bar may get, in CSS pixels. */
const SCALE_BAR_MAX_PX = 160;

/**
 * The longest "round" length (1, 2 or 5 × 10^n µm) that fits in `maxPx` screen pixels,
 * and its width in pixels.
 */
export function niceScaleLength(umPerScreenPx: number, maxPx = SCALE_BAR_MAX_PX): { um: number; px: number } {
  const maxUm = umPerScreenPx * maxPx;
  const exponent = Math.floor(Math.log10(maxUm));
  let um = 10 ** exponent;
  for (const step of [5, 2, 1]) {
    if (step * 10 ** exponent <= maxUm) {
      um = step * 10 ** exponent;
      break;
    }
  }
  return { um, px: um / umPerScreenPx };
}

export function mountViewer(container: HTMLElement, opts: ViewerOptions): SlideViewer {
  container.dataset.ready = "0";
  const viewer = OpenSeadragon({
    element: container,
    tileSources: opts.dziUrl,
    prefixUrl: "", // every image comes from NAV_IMAGES as a full URL
    navImages: NAV_IMAGES,
    showNavigator: true,
    navigatorPosition: "TOP_RIGHT",
    showRotationControl: false,
    showFlipControl: false,
    // WSI: allow a little over-zoom past level 0, keep the slide on screen.
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
    constrainDuringPan: true,
    animationTime: 0.6,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
    crossOriginPolicy: false,
  });

  const scaleBar = opts.mppX && opts.mppX > 0 ? createScaleBar() : null;
  if (scaleBar) container.append(scaleBar.element);
  const zoomReadout = el("div", { class: "zoom-readout", data: { testid: "viewer-zoom" }, attrs: { hidden: true } });
  container.append(zoomReadout);

  let opened = false;
  let ready = false;
  let boxes: BoxOverlay[] = [];
  let trackers: OpenSeadragon.MouseTracker[] = [];

  function markReady(): void {
    if (ready || !opened) return;
    ready = true;
    container.dataset.ready = "1";
    container.append(el("span", { class: "sr-only", data: { testid: "viewer-ready" } }, "Slide loaded"));
    opts.onReady?.();
  }

  function updateOverlays(): void {
    const item = viewer.world.getItemAt(0);
    if (!item) return;
    // Screen (CSS) pixels per level-0 image pixel at the current zoom.
    const imageZoom = item.viewportToImageZoom(viewer.viewport.getZoom(true));
    if (!(imageZoom > 0)) return;
    if (scaleBar && opts.mppX) scaleBar.update(opts.mppX / imageZoom);
    if (opts.objectivePower) {
      zoomReadout.hidden = false;
      zoomReadout.textContent = `${formatMagnification(opts.objectivePower * imageZoom)}`;
    }
    // What is on screen, for "limit to the current view" and for tests.
    const visible = visibleRegion();
    container.dataset.visibleRegion = visible ? visible.join(",") : "";
  }

  function visibleRegion(): Box | null {
    const item = viewer.world.getItemAt(0);
    if (!opened || !item) return null;
    const size = item.getContentSize();
    const rect = item.viewportToImageRectangle(viewer.viewport.getBounds(true));
    const x0 = Math.max(0, Math.floor(rect.x));
    const y0 = Math.max(0, Math.floor(rect.y));
    const x1 = Math.min(size.x, Math.ceil(rect.x + rect.width));
    const y1 = Math.min(size.y, Math.ceil(rect.y + rect.height));
    if (x1 <= x0 || y1 <= y0) return null;
    return [x0, y0, x1 - x0, y1 - y0];
  }

  function drawBoxes(): void {
    for (const tracker of trackers) tracker.destroy();
    trackers = [];
    viewer.clearOverlays();
    const item = viewer.world.getItemAt(0);
    if (!opened || !item) return; // drawn on "open"
    boxes.forEach((overlay, index) => {
      const [x, y, w, h] = overlay.box;
      const element = el("div", {
        class: `box-overlay box-${overlay.kind}`,
        attrs: { title: overlay.title },
        data: { testid: overlay.kind === "roi" ? "roi-overlay" : "region-overlay", index, box: overlay.box.join(",") },
      });
      viewer.addOverlay({ element, location: item.imageToViewportRectangle(x, y, w, h) });
      const onClick = overlay.onClick;
      if (onClick) {
        // OSD's own tracker: a drag that starts on the box still pans the slide; only a click selects.
        trackers.push(
          new OpenSeadragon.MouseTracker({
            element,
            clickHandler: (ev) => {
              if (ev.quick) onClick();
            },
          }),
        );
      }
    });
    container.dataset.boxes = String(boxes.length);
  }

  viewer.addHandler("open", () => {
    opened = true;
    updateOverlays();
    drawBoxes();
  });
  viewer.addHandler("open-failed", (ev) => {
    opts.onError?.(`The slide could not be opened: ${ev.message || "unknown error"}.`);
  });
  // First tiles in: wait one frame so they are drawn, then say so.
  viewer.addHandler("tile-loaded", () => {
    if (opened && !ready) window.requestAnimationFrame(markReady);
  });
  // Say so when the very first tiles fail (e.g. the tile endpoint errors); later failures of
  // single tiles are retried by OSD as the user pans, so they are not reported.
  let failureShown = false;
  viewer.addHandler("tile-load-failed", (ev) => {
    if (ready || failureShown) return;
    failureShown = true;
    opts.onError?.(`Slide tiles could not be loaded: ${ev.message || "unknown error"}.`);
  });
  viewer.addHandler("fully-loaded-change", (ev) => {
    if (ev.fullyLoaded) markReady();
  });
  viewer.addHandler("animation", updateOverlays);
  viewer.addHandler("update-viewport", updateOverlays);
  viewer.addHandler("resize", updateOverlays);

  return {
    visibleRegion,
    showBoxes(next: BoxOverlay[]) {
      boxes = next;
      drawBoxes();
    },
    zoomTo(box: Box) {
      const item = viewer.world.getItemAt(0);
      if (!item) return;
      const [x, y, w, h] = box;
      const margin = 0.25;
      viewer.viewport.fitBoundsWithConstraints(
        item.imageToViewportRectangle(x - w * margin, y - h * margin, w * (1 + 2 * margin), h * (1 + 2 * margin)),
      );
    },
    destroy() {
      for (const tracker of trackers) tracker.destroy();
      trackers = [];
      viewer.destroy();
      container.replaceChildren();
      delete container.dataset.ready;
      delete container.dataset.visibleRegion;
      delete container.dataset.boxes;
    },
  };
}

function formatMagnification(mag: number): string {
  return `${mag >= 10 ? Math.round(mag) : mag.toFixed(1)}×`;
}

function createScaleBar(): { element: HTMLElement; update(umPerScreenPx: number): void } {
  const bar = el("div", { class: "scale-bar-line" });
  const text = el("div", { class: "scale-bar-label" });
  const element = el("div", { class: "scale-bar", data: { testid: "scale-bar" } }, bar, text);
  let last = "";
  return {
    element,
    update(umPerScreenPx: number) {
      const { um, px } = niceScaleLength(umPerScreenPx);
      const key = `${um}:${px.toFixed(1)}`;
      if (key === last) return;
      last = key;
      bar.style.width = `${px.toFixed(1)}px`;
      text.textContent = formatLength(um);
      element.dataset.umPerPx = String(umPerScreenPx);
      element.dataset.lengthUm = String(um);
    },
  };
}
