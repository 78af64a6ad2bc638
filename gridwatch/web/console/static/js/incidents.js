// Incidents: filters (grid node, kind, status, time), the list that the live feed keeps
// current, and the selected incident's detail with its evidence, timeline and actions.
import {api} from "./api.js";
import {fmtAgo, fmtDuration, fmtTime, h, label, objectsText, severityBadge,
        statusBadge} from "./dom.js";

const PAGE_SIZE = 200;
const ACTIONS = [
  ["acknowledged", "Acknowledge"],
  ["dispatched", "Dispatch"],
  ["resolved", "Resolve"],
  ["false_alarm", "False alarm"],
  ["closed", "Close"],
];
const QUICK_RANGES = [["1 h", 3600], ["24 h", 86400], ["7 days", 7 * 86400], ["All", null]];

export function mount(root, ctx, selectedId, query) {
  const filters = {
    node: query.get("grid_node") || "",
    kind: query.get("kind") || "",
    status: new Set(query.getAll("status")),
    since: "",
    until: "",
    overdue: query.get("overdue") === "true",
  };
  const state = {items: new Map(), cursor: null, selected: selectedId, loading: 0};

  const tbody = h("tbody", {id: "incident-rows"});
  const more = h("button", {class: "btn small", hidden: true, onclick: () => load(true)},
    "Load more");
  const summary = h("span", {class: "muted", id: "list-summary"});
  const listError = h("div", {class: "error-box", hidden: true});
  const list = h("section", {class: "panel list"},
    h("div", {class: "panel-head"}, h("b", {}, "Incidents"), summary,
      h("span", {class: "grow"})),
    listError,
    h("div", {class: "scroll"},
      h("table", {class: "incidents"},
        h("thead", {}, h("tr", {},
          ...["Started", "Kind", "Severity", "Status", "Camera", "Zone", "Grid cell", "Objects"]
            .map((t) => h("th", {}, t)))),
        tbody),
      h("div", {class: "empty"}, more)));
  const detail = h("section", {class: "panel detail", id: "incident-detail"});
  root.append(filterPanel(ctx, filters, () => load(false)), list, detail);

  function matches(incident) {
    if (filters.node && !ctx.grid.contains(filters.node, incident.grid_cell)) return false;
    if (filters.kind && incident.kind !== filters.kind) return false;
    if (filters.status.size && !filters.status.has(incident.status)) return false;
    if (filters.overdue && !incident.overdue) return false;
    if (filters.since && incident.start_wall < new Date(filters.since).toISOString()) return false;
    if (filters.until && incident.start_wall >= new Date(filters.until).toISOString()) return false;
    return true;
  }

  function params(cursor) {
    return {
      grid_node: filters.node || null, kind: filters.kind || null,
      status: [...filters.status], overdue: filters.overdue ? "true" : null,
      since: filters.since ? new Date(filters.since).toISOString() : null,
      until: filters.until ? new Date(filters.until).toISOString() : null,
      limit: PAGE_SIZE, cursor,
    };
  }

  async function load(append) {
    const ticket = ++state.loading;
    listError.hidden = true;
    try {
      const page = await api("/api/incidents", {params: params(append ? state.cursor : null)});
      if (ticket !== state.loading) return;
      if (!append) state.items.clear();
      for (const item of page.items) state.items.set(item.id, item);
      state.cursor = page.next_cursor;
      renderRows();
    } catch (err) {
      listError.textContent = err.message;
      listError.hidden = false;
    }
  }

  function renderRows() {
    const sorted = [...state.items.values()]
      .sort((a, b) => b.start_wall.localeCompare(a.start_wall) || b.id.localeCompare(a.id));
    tbody.replaceChildren(...sorted.map((incident) => row(incident, ctx, {
      selected: incident.id === state.selected, fresh: false,
    })));
    if (!sorted.length) {
      tbody.append(h("tr", {}, h("td", {colspan: 8, class: "empty"},
        "No incident matches these filters.")));
    }
    summary.textContent = `${sorted.length}${state.cursor ? "+" : ""} shown`;
    more.hidden = !state.cursor;
  }

  const showDetail = async (id) => {
    state.selected = id;
    for (const tr of tbody.querySelectorAll("tr.row")) {
      tr.classList.toggle("selected", tr.dataset.id === id);
    }
    if (!id) {
      detail.replaceChildren(h("div", {class: "empty"},
        "Select an incident to see its evidence, timeline and actions."));
      return;
    }
    await renderDetail(detail, ctx, id, () => showDetail(state.selected));
  };

  /** Put one changed incident in place without redrawing the others (the operator may be
      pointing at one of them). */
  function upsertRow(incident, fresh) {
    const existing = tbody.querySelector(`tr.row[data-id="${CSS.escape(incident.id)}"]`);
    const el = row(incident, ctx, {selected: incident.id === state.selected, fresh});
    if (existing) {
      existing.replaceWith(el);
      return;
    }
    tbody.querySelector("tr:not(.row)")?.remove();
    const after = [...tbody.querySelectorAll("tr.row")].find((tr) => {
      const other = state.items.get(tr.dataset.id);
      return other && (other.start_wall < incident.start_wall
        || (other.start_wall === incident.start_wall && other.id < incident.id));
    });
    tbody.insertBefore(el, after || null);
    summary.textContent = `${state.items.size}${state.cursor ? "+" : ""} shown`;
  }

  const onIncident = ({incident}) => {
    const known = state.items.has(incident.id);
    if (matches(incident)) {
      state.items.set(incident.id, incident);
      upsertRow(incident, !known);
    } else if (known) {
      state.items.delete(incident.id);
      renderRows();
    }
    const shownVersion = Number(detail.dataset.version || 0);
    if (incident.id === state.selected && incident.version !== shownVersion) {
      showDetail(incident.id);
    }
  };

  const offs = [ctx.feed.on("incident", onIncident), ctx.feed.on("reset", () => load(false))];
  load(false);
  showDetail(selectedId);
  const cleanup = () => offs.forEach((off) => off());
  cleanup.update = (id) => { if (id !== state.selected) showDetail(id); };
  return cleanup;
}

function filterPanel(ctx, filters, apply) {
  const node = h("select", {name: "grid_node", id: "filter-node"},
    h("option", {value: ""}, "All of my grid"),
    ...ctx.grid.nodes.map((n) => h("option", {value: n.id, selected: n.id === filters.node},
      `${"\u00a0\u00a0".repeat(n.depth)}${n.name} (${n.level})`)));
  const kind = h("select", {name: "kind", id: "filter-kind"},
    h("option", {value: ""}, "Every kind"),
    ...ctx.meta.kinds.map((k) => h("option", {value: k, selected: k === filters.kind}, label(k))));
  const statuses = h("div", {class: "chips", id: "filter-status"},
    ...ctx.meta.statuses.map((s) => h("label", {},
      h("input", {type: "checkbox", value: s, checked: filters.status.has(s)}), label(s))));
  const since = h("input", {type: "datetime-local", name: "since", id: "filter-since"});
  const until = h("input", {type: "datetime-local", name: "until", id: "filter-until"});
  const overdue = h("input", {type: "checkbox", name: "overdue", checked: filters.overdue});
  const read = () => {
    filters.node = node.value;
    filters.kind = kind.value;
    filters.status = new Set([...statuses.querySelectorAll("input:checked")].map((i) => i.value));
    filters.since = since.value;
    filters.until = until.value;
    filters.overdue = overdue.checked;
    apply();
  };
  const quick = h("div", {class: "quick"}, ...QUICK_RANGES.map(([text, seconds]) =>
    h("button", {class: "btn small", type: "button", onclick: () => {
      since.value = seconds === null ? "" : localInput(new Date(Date.now() - seconds * 1000));
      until.value = "";
      read();
    }}, text)));
  const form = h("form", {id: "filters", onchange: read, onsubmit: (e) => e.preventDefault()},
    h("label", {class: "field"}, "Grid node", node),
    h("label", {class: "field"}, "Kind", kind),
    h("div", {class: "field"}, h("span", {class: "muted"}, "Status"), statuses),
    h("label", {class: "field"}, "Started after", since),
    h("label", {class: "field"}, "Started before", until),
    quick,
    h("div", {class: "chips"}, h("label", {}, overdue, "Overdue only")),
    h("button", {class: "btn", type: "button", onclick: () => {
      form.reset();
      for (const input of statuses.querySelectorAll("input")) input.checked = false;
      read();
    }}, "Clear filters"));
  return h("section", {class: "panel filters"}, h("h2", {}, "Filters"),
    h("div", {class: "scroll"}, form));
}

/** The detail's address, keeping the filters the list was opened with. */
function detailHash(id) {
  const query = location.hash.split("?")[1];
  return `#/incidents/${encodeURIComponent(id)}${query ? `?${query}` : ""}`;
}

function localInput(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

function row(incident, ctx, {selected, fresh}) {
  const classes = ["row", selected ? "selected" : "", fresh ? "fresh" : ""].join(" ").trim();
  return h("tr", {class: classes, dataset: {id: incident.id, status: incident.status},
                  onclick: () => { location.hash = detailHash(incident.id); }},
    h("td", {class: "mono", title: fmtAgo(incident.start_wall)},
      fmtTime(incident.start_wall).slice(5)),
    h("td", {}, label(incident.kind)),
    h("td", {}, severityBadge(incident.severity)),
    h("td", {}, statusBadge(incident.status), " ",
      incident.overdue ? h("span", {class: "badge overdue"}, "overdue") : null),
    h("td", {}, incident.camera),
    h("td", {}, incident.zone_name || incident.zone),
    h("td", {}, ctx.grid.name(incident.grid_cell)),
    h("td", {}, objectsText(incident.objects)));
}

async function renderDetail(panel, ctx, id, reload) {
  let incident;
  try {
    incident = await api(`/api/incidents/${encodeURIComponent(id)}`);
  } catch (err) {
    panel.replaceChildren(h("div", {class: "error-box"}, err.message));
    return;
  }
  panel.dataset.version = incident.version;
  panel.dataset.id = incident.id;
  panel.dataset.status = incident.status;
  const base = `/api/incidents/${encodeURIComponent(id)}`;
  const media = evidenceView(incident, base);
  const duration = incident.end_wall
    ? fmtDuration((new Date(incident.end_wall) - new Date(incident.start_wall)) / 1000)
    : `ongoing, ${fmtAgo(incident.start_wall).replace(" ago", "")} so far`;
  const facts = h("dl", {class: "facts"},
    ...fact("Status", h("span", {}, statusBadge(incident.status), " ",
      incident.overdue ? h("span", {class: "badge overdue"}, "overdue") : null)),
    ...fact("Severity", severityBadge(incident.severity)),
    ...fact("Camera", incident.camera),
    ...fact("Zone", incident.zone_name || incident.zone),
    ...fact("Grid cell", ctx.grid.name(incident.grid_cell)),
    ...fact("Started", fmtTime(incident.start_wall)),
    ...fact("Duration", duration),
    ...fact("Objects", objectsText(incident.objects)),
    ...fact("Acknowledge by", deadline(incident.ack_due_at, incident.overdue_ack)),
    ...fact("Resolve by", deadline(incident.resolve_due_at, incident.overdue_resolve)),
    ...(incident.escalation_level
      ? fact("Escalated to", `${ctx.grid.name(incident.escalated_to)} (level ${incident.escalation_level})`)
      : []));
  panel.replaceChildren(
    h("div", {class: "panel-head"}, h("b", {}, label(incident.kind)),
      h("span", {class: "muted mono"}, incident.id), h("span", {class: "grow"}),
      h("a", {href: `#/live/${encodeURIComponent(incident.camera)}`, class: "btn small"},
        "Live view")),
    h("div", {class: "scroll"}, h("div", {class: "body"},
      media, facts, actions(incident, ctx, reload),
      h("h3", {}, "Timeline"), timeline(incident))));
}

/** The annotated snapshot, and the clip behind a toggle when there is one, so that the
    facts and the actions stay on screen. */
function evidenceView(incident, base) {
  if (!incident.snapshot && !incident.clip) {
    return h("div", {class: "empty"}, "No snapshot yet.");
  }
  const snapshot = incident.snapshot
    ? h("img", {class: "snap", id: "detail-snapshot", alt: "Annotated snapshot",
                src: `${base}/snapshot?v=${incident.version}`})
    : h("div", {class: "empty"}, "No snapshot yet.");
  if (!incident.clip) return snapshot;
  const clip = h("video", {class: "snap", id: "detail-clip", controls: true, muted: true,
                           preload: "metadata", hidden: true, src: `${base}/clip`});
  const tabs = [["Snapshot", snapshot], ["Clip", clip]].map(([text, shown]) =>
    h("button", {class: `btn small${shown === snapshot ? " primary" : ""}`, type: "button",
                 dataset: {evidence: text.toLowerCase()}, onclick: (event) => {
      snapshot.hidden = shown !== snapshot;
      clip.hidden = shown !== clip;
      if (shown !== clip) clip.pause();
      for (const b of event.target.parentNode.children) {
        b.classList.toggle("primary", b === event.target);
      }
    }}, text));
  return h("div", {class: "evidence"}, h("div", {class: "actions"}, ...tabs), snapshot, clip);
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function deadline(iso, missed) {
  if (!iso) return "–";
  return h("span", {class: missed ? "sev-high" : ""}, fmtTime(iso), missed ? " (missed)" : "");
}

function actions(incident, ctx, reload) {
  const allowed = new Set(ctx.meta.transitions[incident.status] || []);
  const canAct = ctx.user.can_act;
  const note = h("textarea", {id: "action-note", placeholder: "Note for the record (optional)",
                              disabled: !canAct, maxlength: 2000});
  const error = h("div", {class: "error-box", role: "alert", hidden: true});
  const reopening = incident.status === "resolved" || incident.status === "false_alarm";
  const buttons = ACTIONS.map(([to, text]) => {
    const permitted = canAct && allowed.has(to);
    const why = !canAct ? `Your role (${ctx.user.role}) cannot act on incidents`
      : permitted ? "" : `Not possible from ${label(incident.status)}`;
    const button = h("button", {
      class: `btn${to === "false_alarm" ? " danger" : ""}${permitted ? " primary" : ""}`,
      type: "button", disabled: !permitted, title: why || null, dataset: {action: to},
    }, to === "acknowledged" && reopening ? "Reopen" : text);
    button.addEventListener("click", async () => {
      for (const b of buttons) b.disabled = true;
      error.hidden = true;
      try {
        await act(incident, to, note.value.trim() || null);
      } catch (err) {
        error.textContent = err.status === 409
          ? `${err.message} — the incident has been reloaded.` : err.message;
        error.hidden = false;
      }
      await reload();
      if (!error.hidden) document.querySelector("#incident-detail .body")?.prepend(error);
    });
    return button;
  });
  return h("div", {class: "actions", id: "actions"},
    canAct ? note : h("div", {class: "muted notice"},
      `You are a ${ctx.user.role}: you can look, not act.`),
    ...buttons, error);
}

/**
 * Ask for the transition as of the version the operator saw. Detection keeps updating an
 * ongoing incident (objects, a better snapshot), which changes its version but not what
 * the operator decided on: if only that changed, the request is made again on the newer
 * version; if someone else changed the status, the refusal stands.
 */
async function act(incident, to, note) {
  const path = `/api/incidents/${encodeURIComponent(incident.id)}`;
  try {
    return await api(`${path}/transitions`, {method: "POST",
      body: {to, note, expected_version: incident.version}});
  } catch (err) {
    if (err.status !== 409) throw err;
    const now = await api(path);
    if (now.status !== incident.status) throw err;
    return api(`${path}/transitions`, {method: "POST",
      body: {to, note, expected_version: now.version}});
  }
}

function timeline(incident) {
  const entries = [{at: incident.start_wall, text: `Opened by detection: ${label(incident.kind)}`
    + ` in ${incident.zone_name || incident.zone}`, note: objectsText(incident.objects)}];
  for (const t of incident.history || []) {
    entries.push({at: t.at, text: `${label(t.from)} → ${label(t.to)} by ${t.actor}`, note: t.note,
                  to: t.to});
  }
  for (const e of incident.escalations || []) {
    entries.push({at: e.at, text: `Missed the ${e.step} deadline: escalated to `
      + `${e.escalated_to_level} ${e.escalated_to}`, note: null});
  }
  if (incident.end_wall) {
    entries.push({at: incident.end_wall, text: "Condition no longer seen", note: null});
  }
  entries.sort((a, b) => a.at.localeCompare(b.at));
  return h("ol", {class: "timeline", id: "timeline"}, ...entries.map((e) =>
    h("li", {dataset: {to: e.to || ""}}, h("div", {class: "when"}, fmtTime(e.at)),
      h("div", {}, e.text), e.note ? h("div", {class: "note"}, e.note) : null)));
}
