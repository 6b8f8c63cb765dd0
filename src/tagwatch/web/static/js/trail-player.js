// Trail playback: the track (broken at gaps), accuracy circles, zones, violations, and a
// time slider driven by play/pause at a chosen speed. The page's tables work without it.
import { createMap, fitTo, londonTime, readJson, zonesLayer } from "./map.js";

const L = window.L;

// Consecutive fixes further apart than the gap limit are not joined: a gap is drawn as a gap.
export function splitAtGaps(points, gapMs) {
  const runs = [];
  let run = [];
  for (let i = 0; i < points.length; i += 1) {
    if (run.length && points[i][0] - points[i - 1][0] > gapMs) {
      runs.push(run);
      run = [];
    }
    run.push(points[i]);
  }
  if (run.length) runs.push(run);
  return runs;
}

// Index of the last fix at or before t (-1 when t is before the first).
function lastAtOrBefore(points, t) {
  let lo = 0;
  let hi = points.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] <= t) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

// Where the person was at t: interpolated within a run, null inside a gap or outside the trail.
export function positionAt(points, t, gapMs) {
  const i = lastAtOrBefore(points, t);
  if (i < 0) return null;
  const a = points[i];
  if (a[0] === t || i === points.length - 1) return t - a[0] <= gapMs ? [a[1], a[2], a[3]] : null;
  const b = points[i + 1];
  if (b[0] - a[0] > gapMs) return null;
  const f = (t - a[0]) / (b[0] - a[0]);
  return [a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f, Math.max(a[3], b[3])];
}

function setUp(root) {
  const data = readJson(root.dataset.trailPlayer);
  const points = data.points; // [t_ms, lat, lon, accuracy_m]
  const mapElement = root.querySelector("[data-map]");
  const map = createMap(mapElement);
  const zones = zonesLayer(data.zones).addTo(map);
  const runs = splitAtGaps(points, data.gap_ms);
  const track = L.featureGroup().addTo(map);
  for (const run of runs) {
    if (run.length > 1) {
      L.polyline(run.map((p) => [p[1], p[2]]), { color: "#1d70b8", weight: 3 }).addTo(track);
    } else {
      L.circleMarker([run[0][1], run[0][2]], { radius: 3, color: "#1d70b8" }).addTo(track);
    }
  }
  const accuracy = L.featureGroup().addTo(map);
  for (const p of points) {
    L.circle([p[1], p[2]], {
      radius: p[3],
      color: "#505a5f",
      weight: 0.5,
      fillOpacity: 0.05,
      interactive: false,
    }).addTo(accuracy);
  }
  const violations = L.featureGroup().addTo(map);
  for (const v of data.violations || []) {
    if (v.lat == null) continue;
    L.circleMarker([v.lat, v.lon], { radius: 8, color: "#d4351c", weight: 3, fillOpacity: 0 })
      .bindTooltip(`${v.label}: ${londonTime(v.start_ms)}`)
      .addTo(violations);
  }
  fitTo(map, [track, zones]);

  const controls = root.querySelector("[data-player-controls]");
  const slider = controls.querySelector("input[type=range]");
  const clock = controls.querySelector("[data-player-clock]");
  const state = controls.querySelector("[data-player-state]");
  const button = controls.querySelector("button[data-player-toggle]");
  const speed = controls.querySelector("select[data-player-speed]");
  controls.hidden = false;
  root.dataset.runs = String(runs.length);

  const start = points.length ? points[0][0] : data.start_ms;
  const end = points.length ? points[points.length - 1][0] : data.end_ms;
  slider.min = String(start);
  slider.max = String(end);
  slider.step = "1000";
  slider.value = String(start);

  const here = L.circleMarker([0, 0], { radius: 9, color: "#0b0c0c", fillColor: "#ffdd00", fillOpacity: 1 });
  const hereAccuracy = L.circle([0, 0], { radius: 1, color: "#ffdd00", weight: 1, interactive: false });
  let playing = false;
  let lastFrame = 0;
  let t = start;

  function show() {
    slider.value = String(Math.round(t));
    const at = londonTime(t);
    slider.setAttribute("aria-valuetext", at);
    clock.textContent = at;
    root.dataset.playerTime = String(Math.round(t));
    const position = positionAt(points, t, data.gap_ms);
    if (position) {
      here.setLatLng([position[0], position[1]]).addTo(map);
      hereAccuracy.setLatLng([position[0], position[1]]).setRadius(position[2]).addTo(map);
      state.textContent = "";
    } else {
      here.remove();
      hereAccuracy.remove();
      state.textContent = points.length ? "No data at this time (gap in the trail)" : "No fixes in this period";
    }
  }

  function frame(now) {
    if (!playing) return;
    t += (now - lastFrame) * Number(speed.value);
    lastFrame = now;
    if (t >= end) {
      t = end;
      pause();
    }
    show();
    if (playing) requestAnimationFrame(frame);
  }

  function play() {
    if (t >= end) t = start;
    playing = true;
    button.textContent = "Pause";
    button.setAttribute("aria-pressed", "true");
    root.dataset.playing = "true";
    lastFrame = performance.now();
    requestAnimationFrame(frame);
  }

  function pause() {
    playing = false;
    button.textContent = "Play";
    button.setAttribute("aria-pressed", "false");
    root.dataset.playing = "false";
  }

  button.addEventListener("click", () => (playing ? pause() : play()));
  slider.addEventListener("input", () => {
    t = Number(slider.value);
    show();
  });
  show();
  root.dataset.ready = "true";
}

for (const root of document.querySelectorAll("[data-trail-player]")) setUp(root);
