// The console shell: session, header, live feed and hash routing between the pages.
import {api, setCsrfToken, whenUnauthorized} from "./api.js";
import {h, label} from "./dom.js";
import {Feed} from "./feed.js";
import {GridIndex} from "./grid.js";
import {showLogin} from "./login.js";
import * as incidents from "./incidents.js";
import * as live from "./live.js";
import * as reports from "./reports.js";
import * as wall from "./wall.js";

const PAGES = {wall, incidents, reports, live};
const COUNTED = ["new", "acknowledged", "dispatched"];

const view = document.getElementById("view");
const top = document.getElementById("top");
const ctx = {user: null, meta: null, grid: null, feed: null};
let unmount = null;
let countsTimer = null;

whenUnauthorized(() => {
  if (ctx.user) logout("Your session ended. Log in again.");
});

async function boot() {
  try {
    begin(await api("/api/me"));
  } catch (err) {
    if (err.status !== 401) console.error(err);
    login(err.status === 401 ? null : err.message);
  }
}

function login(reason) {
  top.hidden = true;
  showLogin(view, async () => begin(await api("/api/me")), reason);
}

async function begin(user) {
  ctx.user = user;
  setCsrfToken(user.csrf_token);
  const [meta, tree] = await Promise.all([api("/api/console/meta"), api("/api/grid")]);
  ctx.meta = meta;
  ctx.grid = new GridIndex(tree);
  ctx.feed = new Feed(checkSession);
  ctx.feed.on("state", showConnection);
  ctx.feed.on("incident", scheduleCounts);
  ctx.feed.on("reset", scheduleCounts);
  ctx.feed.start();
  renderHeader();
  refreshCounts();
  top.hidden = false;
  if (!location.hash || location.hash === "#/" || location.hash === "#/login") {
    location.hash = "#/wall";
  } else {
    route();
  }
}

async function checkSession() {
  try {
    await api("/api/me");
    ctx.feed.start();
  } catch (err) {
    if (err.status !== 401) setTimeout(checkSession, 3000);
  }
}

function logout(reason) {
  if (unmount) unmount();
  unmount = null;
  if (ctx.feed) ctx.feed.stop();
  ctx.user = null;
  setCsrfToken(null);
  login(reason);
}

function renderHeader() {
  const user = ctx.user;
  const scope = user.scope_node ? user.scope_node.name : user.scope;
  const out = h("button", {class: "btn small", id: "logout", onclick: async () => {
    try { await api("/api/logout", {method: "POST"}); } finally { logout(null); }
  }}, "Log out");
  document.getElementById("who").replaceChildren(
    h("span", {}, h("b", {}, user.username), ` · ${user.role} · ${scope}`), out);
}

function showConnection(connected) {
  const conn = document.getElementById("conn");
  conn.className = `conn ${connected ? "up" : "down"}`;
  conn.textContent = connected ? "live" : "reconnecting";
}

function scheduleCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(refreshCounts, 300);
}

async function refreshCounts() {
  try {
    const [counts, overdue] = await Promise.all([
      api("/api/incidents/counts"),
      api("/api/incidents", {params: {overdue: "true", status: COUNTED, limit: 500}}),
    ]);
    const overdueCount = `${overdue.items.length}${overdue.next_cursor ? "+" : ""}`;
    document.getElementById("counts").replaceChildren(...COUNTED.map((status) =>
      h("a", {class: `count${status === "new" && counts.by_status[status] ? " alert" : ""}`,
              href: `#/incidents?status=${status}`, title: `Incidents ${label(status)}`},
        h("b", {}, counts.by_status[status] ?? 0), h("small", {}, label(status)))),
      h("a", {class: `count${overdue.items.length ? " alert" : ""}`, id: "count-overdue",
              href: "#/incidents?overdue=true", title: "Open incidents past a deadline"},
        h("b", {}, overdueCount), h("small", {}, "overdue")));
    const fresh = counts.by_status.new ?? 0;
    document.title = fresh ? `(${fresh}) Gridwatch console` : "Gridwatch console";
  } catch (err) {
    console.warn("counts", err);
  }
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  return {page: page || "wall", arg: rest.length ? decodeURIComponent(rest.join("/")) : null,
          query: new URLSearchParams(query || "")};
}

function route() {
  if (!ctx.user) return;
  const {page, arg, query} = parseHash();
  const module = PAGES[page] || wall;
  for (const tab of document.querySelectorAll("#tabs a")) {
    tab.classList.toggle("active", tab.dataset.tab === page);
  }
  const same = unmount && unmount.page === page && unmount.query === query.toString();
  if (same && unmount.update) {
    unmount.update(arg, query);
    return;
  }
  if (unmount) unmount();
  const container = h("div", {class: "page", id: `page-${page}`});
  view.replaceChildren(container);
  unmount = module.mount(container, ctx, arg, query) || (() => {});
  unmount.page = page;
  unmount.query = query.toString();
}

window.addEventListener("hashchange", route);
boot();
