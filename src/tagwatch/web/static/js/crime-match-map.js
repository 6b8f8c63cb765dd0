// The match map of the crime mapping hub: the crime and its radius, the person's track through
// the crime window (broken where positions are too far apart to join), each position's
// accuracy as a dashed circle, the labels of positions inside the radius, and the closest
// approach. The page's positions table carries the same without JavaScript.
import { createMap, fitTo, londonTime, readJson } from "./map.js";

const L = window.L;
const CRIME = "#d4351c";
const TRACK = "#1d70b8";

// [t_ms, lat, lon, accuracy_m, label, joined_to_next, window] -> runs of joined positions.
export function joinedRuns(points) {
  const runs = [];
  let run = [];
  for (const point of points) {
    run.push(point);
    if (!point[5]) {
      runs.push(run);
      run = [];
    }
  }
  if (run.length) runs.push(run);
  return runs;
}

function setUp(element) {
  const data = readJson(element.dataset.matchMap);
  const map = createMap(element);
  const crime = [data.crime.lat, data.crime.lon];
  const radius = L.circle(crime, {
    radius: data.radius_m,
    color: CRIME,
    weight: 2,
    fillOpacity: 0.08,
    interactive: false,
  }).addTo(map);
  L.circleMarker(crime, { radius: 6, color: CRIME, fillColor: CRIME, fillOpacity: 1 })
    .bindTooltip(`Crime ${data.crime.ref}`)
    .addTo(map);

  const accuracy = L.featureGroup().addTo(map);
  const track = L.featureGroup().addTo(map);
  const runs = joinedRuns(data.points);
  for (const run of runs) {
    if (run.length > 1) {
      L.polyline(
        run.map((p) => [p[1], p[2]]),
        { color: TRACK, weight: 3, interactive: false },
      ).addTo(track);
    }
  }
  let labelled = 0;
  for (const p of data.points) {
    const at = [p[1], p[2]];
    L.circle(at, {
      radius: p[3],
      color: "#505a5f",
      weight: 1,
      dashArray: "4 4",
      fill: false,
      interactive: false,
    }).addTo(accuracy);
    const inside = Boolean(p[4]);
    const marker = L.circleMarker(at, {
      radius: inside ? 5 : 3,
      color: TRACK,
      weight: 2,
      fillColor: inside ? "#003078" : "#ffffff",
      fillOpacity: 1,
    });
    const time = londonTime(p[0]);
    marker.addTo(track);
    if (inside) {
      // Labels alternate above and below the track so neighbours do not cover each other;
      // the time is in the positions table and on hover.
      labelled += 1;
      marker.bindTooltip(p[4], {
        permanent: true,
        direction: labelled % 2 ? "top" : "bottom",
        className: "tw-crime-label",
      });
      marker.bindPopup(`${p[4]}: ${time}, accuracy ${Math.round(p[3])} m`);
    } else {
      marker.bindTooltip(time);
    }
  }
  L.circleMarker([data.closest.lat, data.closest.lon], {
    radius: 7,
    color: "#0b0c0c",
    weight: 2,
    fillColor: "#ffdd00",
    fillOpacity: 1,
  })
    .bindTooltip(`Closest ${data.closest.distance_m} m at ${londonTime(data.closest.t_ms)}`)
    .addTo(map);

  fitTo(map, [radius, track]);
  element.dataset.runs = String(runs.length);
  element.dataset.labelled = String(labelled);
  element.dataset.ready = "true";
}

for (const element of document.querySelectorAll("[data-match-map]")) setUp(element);
