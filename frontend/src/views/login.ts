// Login form. Calls onLoggedIn with the user once the session cookie is set.

import { ensureCsrf, login } from "../api";
import type { User } from "../api";
import { el } from "../dom";
import { describeError } from "./common";
import type { Cleanup } from "./common";

export function renderLogin(root: HTMLElement, onLoggedIn: (user: User) => void): Cleanup {
  let alive = true;

  const username = el("input", {
    attrs: { id: "login-username", name: "username", type: "text", autocomplete: "username", required: true },
    data: { testid: "login-username" },
  });
  const password = el("input", {
    attrs: { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true },
    data: { testid: "login-password" },
  });
  const submit = el("button", { class: "btn btn-primary", attrs: { type: "submit" }, data: { testid: "login-submit" } }, "Log in");
  const error = el("p", { class: "form-error", attrs: { role: "alert", hidden: true }, data: { testid: "login-error" } });

  const form = el(
    "form",
    { class: "login-form", attrs: { novalidate: true } },
    el("h1", { class: "brand brand-large" }, "PathDesk"),
    el("p", { class: "muted" }, "Sign in to the reading desk."),
    el("label", { attrs: { for: "login-username" } }, "Username"),
    username,
    el("label", { attrs: { for: "login-password" } }, "Password"),
    password,
    error,
    submit,
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!username.value.trim() || !password.value) {
      showError("Enter your username and password.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Logging in…";
    try {
      // The CSRF cookie may be missing if the first call at start-up failed.
      if (!document.cookie.includes("csrftoken=")) await ensureCsrf();
      const user = await login(username.value.trim(), password.value);
      if (alive) onLoggedIn(user);
    } catch (err) {
      if (!alive) return;
      showError(describeError(err));
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Log in";
    }
  });

  function showError(message: string): void {
    error.textContent = message;
    error.hidden = false;
  }

  root.replaceChildren(el("main", { class: "login-page" }, form));
  username.focus();
  return () => {
    alive = false;
  };
}
