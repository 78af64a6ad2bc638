// The login form, shown at start without a session and whenever the API answers 401.
import {api, ApiError} from "./api.js";
import {h} from "./dom.js";

export function showLogin(view, onLoggedIn, reason) {
  const error = h("div", {class: "error-box", role: "alert", hidden: !reason}, reason || "");
  const username = h("input", {name: "username", autocomplete: "username", required: true,
                               autofocus: true});
  const password = h("input", {name: "password", type: "password",
                               autocomplete: "current-password", required: true});
  const submit = h("button", {class: "btn primary", type: "submit"}, "Log in");
  const form = h("form", {class: "login", id: "login-form"},
    h("h1", {}, "Gridwatch"),
    h("p", {}, "Monitoring centre console. Log in with your operator account."),
    h("label", {class: "field"}, "Username", username),
    h("label", {class: "field"}, "Password", password),
    error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const user = await api("/api/login", {method: "POST",
        body: {username: username.value.trim(), password: password.value}});
      onLoggedIn(user);
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401
        ? "Wrong username or password." : err.message;
      error.hidden = false;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  view.replaceChildren(h("div", {class: "login-wrap"}, form));
  username.focus();
}
