// History-API routing. Django serves index.html for "/", "/cases/..." and "/slides/...".

export type Route =
  | { name: "cases" }
  | { name: "case"; id: number }
  | { name: "slide"; id: number }
  | { name: "not-found"; path: string };

export function parseRoute(pathname: string): Route {
  const path = pathname.replace(/\/+$/, "") || "/";
  if (path === "/" || path === "/cases") return { name: "cases" };
  let m = /^\/cases\/(\d+)$/.exec(path);
  if (m) return { name: "case", id: Number(m[1]) };
  m = /^\/slides\/(\d+)$/.exec(path);
  if (m) return { name: "slide", id: Number(m[1]) };
  return { name: "not-found", path: pathname };
}

export const paths = {
  cases: (): string => "/",
  case: (id: number): string => `/cases/${id}`,
  slide: (id: number): string => `/slides/${id}`,
};

type Listener = () => void;
let listener: Listener | null = null;

export function navigate(path: string, { replace = false } = {}): void {
  if (path !== window.location.pathname + window.location.search) {
    if (replace) window.history.replaceState(null, "", path);
    else window.history.pushState(null, "", path);
  }
  listener?.();
}

/** Paths that belong to Django, not to this app: let the browser load them normally. */
const SERVER_PREFIXES = ["/api/", "/admin", "/ws/", "/static/", "/media/", "/assets/"];

/**
 * Start routing: `onChange` runs now, on back/forward, and on clicks on same-origin links
 * (plain left clicks only, so ctrl/middle click still opens a new tab).
 */
export function startRouter(onChange: Listener): void {
  listener = onChange;
  window.addEventListener("popstate", onChange);
  document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const anchor = (ev.target as Element | null)?.closest?.("a");
    if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
    const url = new URL(anchor.href, window.location.href);
    if (url.origin !== window.location.origin) return;
    if (SERVER_PREFIXES.some((prefix) => url.pathname.startsWith(prefix))) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
  onChange();
}
