// Entry point: find out who is logged in, then render the view for the current URL.

import "./style.css";
import { currentUser, ensureCsrf, logout } from "./api";
import type { User } from "./api";
import { el } from "./dom";
import { parseRoute, paths, startRouter } from "./router";
import { renderCaseList } from "./views/caseList";
import { renderCaseView } from "./views/caseView";
import { backLink, describeError, errorBlock, loadingBlock } from "./views/common";
import type { Cleanup, ViewContext } from "./views/common";
import { renderShell } from "./views/layout";
import { renderLogin } from "./views/login";
import { renderSlideViewer } from "./views/slideViewer";

const root = document.getElementById("app");
if (!root) throw new Error("#app element missing from index.html");
const app: HTMLElement = root;

let user: User | null = null;
let current: { abort: AbortController; cleanup: Cleanup } | null = null;

function render(): void {
  // Stop the previous view first: its polls, in-flight requests and OpenSeadragon instance.
  if (current) {
    current.abort.abort();
    current.cleanup();
  }
  const abort = new AbortController();
  const view: { abort: AbortController; cleanup: Cleanup } = { abort, cleanup: () => {} };
  current = view;
  const signal = abort.signal;

  if (!user) {
    document.body.classList.remove("viewer-mode");
    document.title = "Log in · PathDesk";
    view.cleanup = renderLogin(app, (u) => {
      user = u;
      render();
    });
    return;
  }

  const route = parseRoute(window.location.pathname);
  document.body.classList.toggle("viewer-mode", route.name === "slide");
  const { main } = renderShell(app, user, () => void doLogout(), route.name === "slide");
  const ctx: ViewContext = {
    user,
    signal,
    onAuthLost: () => {
      user = null;
      render();
    },
  };

  switch (route.name) {
    case "cases":
      document.title = "Worklist · PathDesk";
      view.cleanup = renderCaseList(main, ctx);
      break;
    case "case":
      document.title = "Case · PathDesk";
      view.cleanup = renderCaseView(main, ctx, route.id);
      break;
    case "slide":
      document.title = "Slide · PathDesk";
      view.cleanup = renderSlideViewer(main, ctx, route.id);
      break;
    case "not-found":
      document.title = "Not found · PathDesk";
      main.replaceChildren(
        el("section", { class: "page" }, backLink(paths.cases(), "Worklist"), errorBlock(`No page at ${route.path}.`)),
      );
      break;
  }
}

async function doLogout(): Promise<void> {
  try {
    await logout();
  } catch {
    // Whatever the server says, this browser is done with the session.
  }
  user = null;
  window.history.pushState(null, "", paths.cases());
  render();
}

async function boot(): Promise<void> {
  app.replaceChildren(loadingBlock("Starting PathDesk…"));
  try {
    await ensureCsrf();
    user = await currentUser();
  } catch (err) {
    const retry = el("button", { class: "btn", attrs: { type: "button" }, on: { click: () => void boot() } }, "Retry");
    app.replaceChildren(
      el("main", { class: "login-page" }, el("div", { class: "panel" }, errorBlock(`PathDesk is unavailable: ${describeError(err)}`), retry)),
    );
    return;
  }
  startRouter(render);
}

void boot();
