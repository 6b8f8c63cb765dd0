// Drawing a zone on the order form: click to add a polygon's vertices, or click a circle's
// centre; an uploaded GeoJSON or KML file is previewed. The result is GeoJSON written into the
// form's geometry field, which the server validates exactly as it does without this script.
import { ZONE_STYLES, createMap, fitTo, geometryLayer } from "./map.js";

const L = window.L;

export function polygonGeometry(vertices) {
  if (vertices.length < 3) return null;
  const ring = vertices.map(([lat, lon]) => [round(lon), round(lat)]);
  ring.push(ring[0]);
  return { type: "Polygon", coordinates: [ring] };
}

export function circleGeometry(centre, radius) {
  if (!centre || !(radius > 0)) return null;
  return { type: "Circle", coordinates: [round(centre[1]), round(centre[0])], radius_m: radius };
}

function round(value) {
  return Math.round(value * 1e7) / 1e7;
}

// The first Polygon (or MultiPolygon, or Circle) found in a GeoJSON document.
export function geometryFromGeoJson(document_) {
  const items = document_.type === "FeatureCollection" ? document_.features : [document_];
  for (const item of items) {
    const geometry = item.type === "Feature" ? item.geometry : item;
    if (geometry && ["Polygon", "MultiPolygon", "Circle"].includes(geometry.type)) return geometry;
  }
  return null;
}

export function geometryFromKml(text) {
  const xml = new DOMParser().parseFromString(text, "application/xml");
  const polygons = [...xml.getElementsByTagName("Polygon")].map((polygon) =>
    [...polygon.getElementsByTagName("coordinates")].map((node) =>
      node.textContent
        .trim()
        .split(/\s+/)
        .map((tuple) => tuple.split(",").slice(0, 2).map(Number)),
    ),
  );
  if (!polygons.length) return null;
  return polygons.length === 1
    ? { type: "Polygon", coordinates: polygons[0] }
    : { type: "MultiPolygon", coordinates: polygons };
}

function setUp(element) {
  const field = document.getElementById(element.dataset.zoneDraw);
  const toolbar = document.getElementById(element.dataset.toolbar);
  const fileInput = document.getElementById(element.dataset.file);
  const radiusInput = toolbar.querySelector("[data-radius]");
  const status = toolbar.querySelector("[data-draw-status]");
  const map = createMap(element);
  toolbar.hidden = false;

  let mode = "polygon";
  let vertices = [];
  let centre = null;
  let shape = null;
  const handles = L.layerGroup().addTo(map);

  function write(geometry) {
    field.value = geometry ? JSON.stringify(geometry) : "";
    element.dataset.geometryType = geometry ? geometry.type : "";
  }

  function redraw() {
    handles.clearLayers();
    if (shape) shape.remove();
    shape = null;
    let geometry = null;
    if (mode === "polygon") {
      for (const v of vertices) L.circleMarker(v, { radius: 4, color: "#f47738" }).addTo(handles);
      geometry = polygonGeometry(vertices);
      if (!geometry && vertices.length === 2) L.polyline(vertices, ZONE_STYLES.drawing).addTo(handles);
      status.textContent = `${vertices.length} point(s) placed${geometry ? "" : ": place at least 3"}`;
    } else {
      geometry = circleGeometry(centre, Number(radiusInput.value));
      status.textContent = centre ? `Circle of ${radiusInput.value} metres` : "Click the centre";
    }
    if (geometry) shape = geometryLayer(geometry, ZONE_STYLES.drawing).addTo(map);
    write(geometry);
  }

  function showExisting(geometry) {
    vertices = [];
    centre = null;
    handles.clearLayers();
    if (shape) shape.remove();
    shape = geometryLayer(geometry, ZONE_STYLES.drawing).addTo(map);
    fitTo(map, [shape]);
    write(geometry);
    status.textContent = `Zone loaded (${geometry.type})`;
  }

  map.on("click", (event) => {
    const point = [event.latlng.lat, event.latlng.lng];
    if (mode === "polygon") vertices.push(point);
    else centre = point;
    redraw();
  });
  for (const radio of toolbar.querySelectorAll("input[name=draw_mode]")) {
    radio.addEventListener("change", () => {
      mode = radio.value;
      vertices = [];
      centre = null;
      redraw();
    });
  }
  radiusInput.addEventListener("input", redraw);
  toolbar.querySelector("[data-undo]").addEventListener("click", () => {
    vertices.pop();
    redraw();
  });
  toolbar.querySelector("[data-clear]").addEventListener("click", () => {
    vertices = [];
    centre = null;
    redraw();
  });
  if (fileInput) {
    fileInput.addEventListener("change", async () => {
      const file = fileInput.files[0];
      if (!file) return;
      const text = await file.text();
      let geometry = null;
      try {
        geometry = /\.kml$/i.test(file.name) ? geometryFromKml(text) : geometryFromGeoJson(JSON.parse(text));
      } catch (error) {
        geometry = null;
      }
      if (geometry) showExisting(geometry);
      else status.textContent = "No polygon or circle found in that file";
    });
  }
  if (field.value.trim()) {
    try {
      showExisting(JSON.parse(field.value));
    } catch (error) {
      // Leave what the user typed for the server to explain.
    }
  }
  element.dataset.ready = "true";
}

for (const element of document.querySelectorAll("[data-zone-draw]")) setUp(element);
