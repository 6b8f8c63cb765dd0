// Live map: the caseload's latest positions, pushed by the server as server-sent events.
import { createMap, fitTo, londonTime, readJson, zonesLayer } from "./map.js";

const L = window.L;

function setUp(element) {
  const initial = readJson(element.dataset.liveMap) || { people: [], zones: [] };
  const map = createMap(element);
  const zones = zonesLayer(initial.zones).addTo(map);
  const markers = new Map();
  const status = document.getElementById(element.dataset.status);
  let updates = 0;
  let fitted = false;

  function place(person) {
    let marker = markers.get(person.id);
    if (!marker) {
      marker = L.circleMarker([person.lat, person.lon], {
        radius: 7,
        color: "#0b0c0c",
        fillColor: "#1d70b8",
        fillOpacity: 0.9,
      }).addTo(map);
      markers.set(person.id, marker);
    }
    marker.setLatLng([person.lat, person.lon]);
    marker.bindTooltip(`${person.name}: ${londonTime(person.t_ms)}`);
    const cell = document.querySelector(`[data-live-seen="${person.id}"]`);
    if (cell) cell.textContent = londonTime(person.t_ms);
  }

  for (const person of initial.people) place(person);
  fitTo(map, [zones, L.featureGroup([...markers.values()])]);
  fitted = markers.size > 0;

  const source = new EventSource(element.dataset.streamUrl);
  source.addEventListener("positions", (event) => {
    const people = JSON.parse(event.data);
    for (const person of people) place(person);
    updates += 1;
    element.dataset.updates = String(updates);
    element.dataset.markers = String(markers.size);
    if (!fitted && markers.size) {
      fitTo(map, [L.featureGroup([...markers.values()])]);
      fitted = true;
    }
    if (status && people.length) {
      status.textContent = `Updated ${londonTime(Date.now())}: ${people.length} new position(s)`;
    }
  });
  source.addEventListener("error", () => {
    if (status) status.textContent = "Live updates paused: reconnecting";
  });
  window.addEventListener("pagehide", () => source.close());
  element.dataset.ready = "true";
}

for (const element of document.querySelectorAll("[data-live-map]")) setUp(element);
