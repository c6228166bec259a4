// The logged-in frame: a header with the user and "Log out", and the main area views render into.

import type { User } from "../api";
import { el } from "../dom";
import { paths } from "../router";

export interface Shell {
  main: HTMLElement;
}

export function renderShell(root: HTMLElement, user: User, onLogout: () => void, fullBleed: boolean): Shell {
  const logoutButton = el(
    "button",
    { class: "btn btn-quiet", attrs: { type: "button" }, data: { testid: "logout" }, on: { click: onLogout } },
    "Log out",
  );
  const departments = user.departments.map((d) => d.name).join(", ");
  const header = el(
    "header",
    { class: "app-header" },
    el("a", { class: "brand", attrs: { href: paths.cases() } }, "PathDesk"),
    el("nav", { class: "app-nav" }, el("a", { attrs: { href: paths.cases() } }, "Worklist")),
    el(
      "div",
      { class: "user-box" },
      el(
        "span",
        { class: "user", attrs: { title: departments ? `Departments: ${departments}` : null } },
        el("span", { class: "user-name", data: { testid: "user-name" } }, user.username),
        el("span", { class: "user-role", data: { testid: "user-role" } }, user.role),
      ),
      logoutButton,
    ),
  );
  const main = el("main", { class: fullBleed ? "app-main full-bleed" : "app-main" });
  root.replaceChildren(el("div", { class: "app" }, header, main));
  return { main };
}
