// Poll a slide while the ingest worker processes it.

import { ApiError, getSlide } from "./api";
import type { Slide } from "./api";

export const SLIDE_POLL_MS = 1500;

/**
 * Fetch the slide every `intervalMs` while it is `pending`, calling `onUpdate` whenever its
 * status changes. Resolves with the settled slide, or null when `signal` aborts. Transient
 * failures (network, 5xx) are retried; a 4xx is final and rejects.
 */
export async function pollSlide(
  id: number,
  signal: AbortSignal,
  onUpdate: (slide: Slide) => void,
  intervalMs = SLIDE_POLL_MS,
): Promise<Slide | null> {
  let lastStatus: string | null = null;
  while (!signal.aborted) {
    await sleep(intervalMs, signal);
    if (signal.aborted) return null;
    let slide: Slide;
    try {
      slide = await getSlide(id);
    } catch (err) {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
      continue;
    }
    if (signal.aborted) return null;
    if (slide.status !== lastStatus) {
      lastStatus = slide.status;
      onUpdate(slide);
    }
    if (slide.status !== "pending") return slide;
  }
  return null;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = window.setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      window.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
