// Camera wall: one tile per camera (state with its reason, newest picture, counters), and
// the newest incidents beside it. Both follow the live feed; a picture is fetched when the
// camera reports a newer one. Fetching it is what makes the camera's worker encode pictures
// about once a second (for workers.preview_demand_s); nobody fetching, it encodes one
// rarely. A tile whose picture stopped changing (a stalled camera) asks again every
// RENEW_MS, so that pictures come at once when the camera is back.
import {api} from "./api.js";
import {fmtAgo, fmtBitrate, fmtDuration, h, label, objectsText, severityBadge,
        statusBadge} from "./dom.js";

const BAD_STATES = new Set(["offline", "stalled", "auth_failed", "not_found", "unsupported"]);
const FEED_SIZE = 30;
const RENEW_MS = 5000;

export function mount(root, ctx) {
  const wall = h("section", {class: "wall", id: "camera-wall", "aria-label": "Camera wall"});
  const list = h("div", {class: "scroll", id: "wall-feed"});
  const side = h("section", {class: "panel side-feed"},
    h("h2", {}, "Latest incidents", h("span", {class: "grow"}),
      h("a", {href: "#/incidents", class: "muted"}, "all incidents")),
    list);
  root.append(wall, side);

  const tiles = new Map();
  const none = h("div", {class: "empty"}, "No camera in your grid scope.");
  const renderCameras = (cameras) => {
    if (!cameras.length && !tiles.size) {
      wall.replaceChildren(none);
      return;
    }
    none.remove();
    for (const camera of cameras) {
      let tile = tiles.get(camera.id);
      if (!tile) {
        tile = makeTile(camera);
        tiles.set(camera.id, tile);
        wall.append(tile.el);
      }
      updateTile(tile, camera);
    }
  };

  const incidents = [];
  const renderFeed = () => {
    list.replaceChildren(...(incidents.length ? incidents.map((i) => feedItem(i, ctx))
      : [h("div", {class: "empty"}, "No incident yet.")]));
  };
  const load = async () => {
    const page = await api("/api/incidents", {params: {limit: FEED_SIZE}});
    incidents.splice(0, incidents.length, ...page.items);
    renderFeed();
  };
  const onIncident = ({incident}) => {
    const at = incidents.findIndex((i) => i.id === incident.id);
    if (at >= 0) incidents.splice(at, 1);
    incidents.unshift(incident);
    incidents.sort((a, b) => b.start_wall.localeCompare(a.start_wall));
    incidents.length = Math.min(incidents.length, FEED_SIZE);
    renderFeed();
  };

  renderCameras(ctx.feed.cameras);
  load().catch((err) => list.replaceChildren(h("div", {class: "error-box"}, err.message)));
  const offs = [ctx.feed.on("cameras", renderCameras), ctx.feed.on("incident", onIncident),
                ctx.feed.on("reset", load)];
  return () => offs.forEach((off) => off());
}

function makeTile(camera) {
  const img = h("img", {alt: `Last frame of ${camera.name}`, hidden: true});
  const nofeed = h("div", {class: "nofeed"}, "no picture yet");
  const state = h("span", {class: "badge state"});
  const age = h("span", {class: "age"});
  const reason = h("div", {class: "reason"});
  const stats = h("div", {class: "stats"});
  const el = h("article", {class: "tile", dataset: {camera: camera.id}},
    h("div", {class: "frame"}, img, nofeed, state, age),
    h("div", {class: "meta"},
      h("div", {class: "name"}, h("span", {class: "grow"}, camera.name),
        h("a", {class: "btn small", href: `#/live/${encodeURIComponent(camera.id)}`,
                title: "Live video with detections"}, "Live")),
      h("div", {class: "muted"}, `${camera.id} · cell ${camera.grid_cell || "none"}`),
      reason, stats));
  return {el, img, nofeed, state, age, reason, stats, seq: null, fetchedAt: 0};
}

function updateTile(tile, camera) {
  const bad = BAD_STATES.has(camera.state);
  tile.el.classList.toggle("state-bad", bad);
  tile.el.dataset.state = camera.state;
  tile.state.className = `badge state cam-${camera.state}`;
  tile.state.textContent = label(camera.state);
  tile.reason.textContent = `${camera.reason || ""} · since ${fmtAgo(camera.since * 1000)}`;
  tile.reason.title = camera.reason || "";
  tile.age.textContent = camera.last_frame_age_s === null ? "no frame"
    : `frame ${fmtDuration(camera.last_frame_age_s)} old`;
  tile.stats.replaceChildren(
    h("span", {}, `${fmtBitrate(camera.bitrate_bps)}`),
    h("span", {}, `${camera.frames_decoded ?? 0} frames`),
    h("span", {}, `${camera.analysed ?? 0} analysed`),
    h("span", {}, `${camera.reconnects ?? 0} reconnects`),
    h("span", {}, `${camera.detections} objects`));
  const now = Date.now();
  if (camera.preview_seq && (camera.preview_seq !== tile.seq
                             || now - tile.fetchedAt >= RENEW_MS)) {
    tile.seq = camera.preview_seq;
    tile.fetchedAt = now;
    const next = new Image();
    next.onload = () => {
      tile.img.src = next.src;
      tile.img.hidden = false;
      tile.nofeed.hidden = true;
    };
    next.src = `/api/live/cameras/${encodeURIComponent(camera.id)}/frame.jpg`
      + `?seq=${camera.preview_seq}&at=${now}`;
  }
}

function feedItem(incident, ctx) {
  return h("div", {class: "feed-item", dataset: {id: incident.id},
                   onclick: () => { location.hash = `#/incidents/${incident.id}`; }},
    h("div", {class: "what"}, label(incident.kind), " ", severityBadge(incident.severity)),
    h("div", {}, statusBadge(incident.status),
      incident.overdue ? h("span", {class: "badge overdue"}, "overdue") : null),
    h("div", {class: "where"}, `${incident.camera} · ${incident.zone_name || incident.zone} · `
      + ctx.grid.name(incident.grid_cell)),
    h("div", {class: "when"}, fmtAgo(incident.start_wall)),
    h("div", {class: "where"}, objectsText(incident.objects)));
}
