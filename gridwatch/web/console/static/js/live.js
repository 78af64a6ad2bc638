// Live view: one camera over WebRTC, with the detection core's boxes drawn over the video
// from the metadata the service sends on a data channel beside it.
import {api} from "./api.js";
import {fmtBitrate, h, label} from "./dom.js";

const BOX_TTL_MS = 1500;
const ZONE_COLOUR = "rgba(255, 200, 0, 0.9)";
const BOX_COLOUR = "rgba(0, 230, 90, 0.95)";

export function mount(root, ctx, cameraId) {
  const cams = h("nav", {class: "scroll"});
  const video = h("video", {id: "live-video", autoplay: true, muted: true, playsinline: true});
  const canvas = h("canvas", {id: "live-overlay"});
  const status = h("div", {class: "status", id: "live-status"}, "Choose a camera");
  const info = h("dl", {class: "facts", id: "live-info"});
  const objects = h("ul", {id: "live-objects", class: "muted"});
  const error = h("div", {class: "error-box", role: "alert", hidden: true});
  root.append(
    h("section", {class: "panel live-cams"}, h("h2", {}, "Cameras"), cams),
    h("section", {class: "panel live-main"},
      h("div", {class: "panel-head", id: "live-title"}, "Live view"), error,
      h("div", {class: "stage"}, video, canvas, status)),
    h("section", {class: "panel live-info"}, h("h2", {}, "Stream"),
      h("div", {class: "scroll", style: "padding:14px 16px"}, info,
        h("h3", {}, "Detected now"), objects)));

  let current = null;

  const renderCameras = (cameras) => {
    cams.replaceChildren(...cameras.map((c) => h("a", {
      href: `#/live/${encodeURIComponent(c.id)}`, class: c.id === cameraId ? "active" : "",
      dataset: {camera: c.id}},
      h("div", {}, h("b", {}, c.name)),
      h("div", {class: "muted"}, h("span", {class: `cam-${c.state}`}, label(c.state)),
        ` · ${c.grid_cell || "no cell"}`))));
  };

  async function open(id) {
    cameraId = id;
    if (current) current.close();
    current = null;
    error.hidden = true;
    renderCameras(ctx.feed.cameras);
    if (!id) {
      status.textContent = "Choose a camera on the left.";
      return;
    }
    const camera = ctx.feed.cameras.find((c) => c.id === id);
    document.getElementById("live-title").textContent =
      `Live view · ${camera ? camera.name : id}`;
    status.textContent = "Connecting…";
    try {
      current = await connect(id, video, canvas, {status, info, objects});
    } catch (err) {
      status.textContent = "Not connected";
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  if (!ctx.feed.cameras.length) {
    api("/api/cameras").then(renderCameras)
      .catch(() => {});
  }
  const off = ctx.feed.on("cameras", renderCameras);
  const leave = () => { if (current) current.close(); };
  window.addEventListener("pagehide", leave);
  open(cameraId);
  const cleanup = () => {
    off();
    window.removeEventListener("pagehide", leave);
    leave();
    current = null;
  };
  cleanup.update = (id) => { if (id !== cameraId) open(id); };
  return cleanup;
}

async function connect(cameraId, video, canvas, panel) {
  const pc = new RTCPeerConnection({iceServers: []});
  pc.addTransceiver("video", {direction: "recvonly"});
  const channel = pc.createDataChannel("detections");
  const overlay = new Overlay(video, canvas);
  let session = null;
  let closed = false;
  let statsTimer = null;

  channel.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "info") {
      overlay.zones = message.zones || [];
      showInfo(panel.info, message);
    } else if (message.type === "detections") {
      overlay.show(message);
      panel.objects.replaceChildren(...(message.detections.length
        ? message.detections.map((d) => h("li", {}, `${d.cls} ${(d.score * 100).toFixed(0)} %`
          + (d.track !== null ? ` · track ${d.track}` : "")))
        : [h("li", {}, "nothing")]));
    }
  };
  pc.ontrack = (event) => {
    video.srcObject = new MediaStream([event.track]);
    video.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    panel.status.textContent = pc.connectionState === "connected"
      ? "Live" : label(pc.connectionState);
  };

  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const answer = await api(`/api/live/cameras/${encodeURIComponent(cameraId)}/webrtc`, {
    method: "POST", body: {sdp: pc.localDescription.sdp, type: pc.localDescription.type}});
  session = answer.session;
  await pc.setRemoteDescription({type: answer.type, sdp: answer.sdp});
  showInfo(panel.info, answer);

  let lastBytes = 0;
  let lastAt = performance.now();
  statsTimer = setInterval(async () => {
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "video") return;
      const now = performance.now();
      const rate = ((r.bytesReceived - lastBytes) * 8) / ((now - lastAt) / 1000);
      lastBytes = r.bytesReceived;
      lastAt = now;
      const codec = stats.get(r.codecId);
      setFact(panel.info, "Received", `${video.videoWidth}×${video.videoHeight}, `
        + `${Math.round(r.framesPerSecond || 0)} fps, ${fmtBitrate(rate)}`);
      setFact(panel.info, "Decoded", `${r.framesDecoded ?? 0} frames, `
        + `${r.keyFramesDecoded ?? 0} keyframes`);
      if (codec) setFact(panel.info, "Browser codec", codec.mimeType.replace("video/", ""));
    });
  }, 1000);

  return {
    close() {
      if (closed) return;
      closed = true;
      clearInterval(statsTimer);
      overlay.stop();
      pc.close();
      video.srcObject = null;
      if (session) {
        api(`/api/live/webrtc/${encodeURIComponent(session)}`, {method: "DELETE", keepalive: true})
          .catch(() => {});
      }
    },
  };
}

/** aiortc does not trickle candidates: send the offer once gathering has finished. */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);
  });
}

function showInfo(dl, message) {
  setFact(dl, "Delivery", message.mode === "passthrough"
    ? "camera H.264 passed through (not re-encoded)"
    : `re-encoded by the service${message.reason ? `: ${message.reason}` : ""}`);
  setFact(dl, "Codec sent", message.codec || "–");
  const src = message.source;
  if (src) {
    setFact(dl, "Camera stream", `${src.codec}${src.profile ? ` ${src.profile}` : ""}, `
      + `${src.width}×${src.height}${src.b_frames ? ", B-frames" : ""}`);
  }
  dl.dataset.mode = message.mode;
  dl.dataset.codec = message.codec || "";
}

function setFact(dl, name, value) {
  let dd = dl.querySelector(`dd[data-name="${name}"]`);
  if (!dd) {
    dl.append(h("dt", {}, name));
    dd = h("dd", {dataset: {name}});
    dl.append(dd);
  }
  dd.textContent = value;
}

/** Draws zones and the newest boxes over the video, scaled from the analysed frame. */
class Overlay {
  constructor(video, canvas) {
    this.video = video;
    this.canvas = canvas;
    this.zones = [];
    this.result = null;
    this.shownAt = 0;
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      this.draw();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  show(result) {
    this.result = result;
    this.shownAt = performance.now();
  }

  stop() { this.running = false; }

  /** Where the picture sits inside the element (object-fit: contain letterboxes it). */
  contentRect() {
    const vw = this.video.videoWidth;
    const vh = this.video.videoHeight;
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    if (!vw || !vh) return null;
    const scale = Math.min(cw / vw, ch / vh);
    return {x: (cw - vw * scale) / 2, y: (ch - vh * scale) / 2, w: vw * scale, h: vh * scale};
  }

  draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(this.canvas.clientWidth * ratio);
    const height = Math.round(this.canvas.clientHeight * ratio);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const g = this.canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    const rect = this.contentRect();
    if (!rect) return;
    g.lineWidth = 2 * ratio;
    g.strokeStyle = ZONE_COLOUR;
    g.setLineDash([8 * ratio, 6 * ratio]);
    for (const zone of this.zones) {
      g.beginPath();
      zone.polygon.forEach(([x, y], i) => {
        const px = rect.x + x * rect.w;
        const py = rect.y + y * rect.h;
        if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
      });
      g.closePath();
      g.stroke();
    }
    g.setLineDash([]);
    const result = this.result;
    if (!result || performance.now() - this.shownAt > BOX_TTL_MS || !result.width) return;
    const sx = rect.w / result.width;
    const sy = rect.h / result.height;
    g.font = `${14 * ratio}px sans-serif`;
    g.lineWidth = 3 * ratio;
    for (const d of result.detections) {
      const [x1, y1, x2, y2] = d.box;
      const x = rect.x + x1 * sx;
      const y = rect.y + y1 * sy;
      g.strokeStyle = BOX_COLOUR;
      g.strokeRect(x, y, (x2 - x1) * sx, (y2 - y1) * sy);
      const text = `${d.cls} ${(d.score * 100).toFixed(0)}%`;
      const tw = g.measureText(text).width + 8 * ratio;
      g.fillStyle = "rgba(0, 0, 0, 0.7)";
      g.fillRect(x, y - 20 * ratio, tw, 20 * ratio);
      g.fillStyle = "#fff";
      g.fillText(text, x + 4 * ratio, y - 5 * ratio);
    }
  }
}
