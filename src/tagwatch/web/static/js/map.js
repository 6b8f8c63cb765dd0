// Map set-up shared by every page with a map: tiles only when configured, so maps work offline.
const L = window.L;
const LONDON_TIME = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London",
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export const ZONE_STYLES = {
  exclusion_zone: { color: "#d4351c", weight: 2, fillOpacity: 0.15 },
  inclusion_zone: { color: "#00703c", weight: 2, fillOpacity: 0.1 },
  curfew_address: { color: "#1d70b8", weight: 2, fillOpacity: 0.2 },
  drawing: { color: "#f47738", weight: 3, fillOpacity: 0.2 },
};

export function londonTime(ms) {
  return LONDON_TIME.format(new Date(ms));
}

export function readJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : null;
}

export function createMap(element) {
  const map = L.map(element, { preferCanvas: true, zoomSnap: 0.5 });
  const tileUrl = element.dataset.tileUrl || "";
  if (tileUrl) {
    L.tileLayer(tileUrl, {
      maxZoom: 19,
      attribution: element.dataset.tileAttribution || "",
    }).addTo(map);
  } else {
    element.classList.add("tw-map--plain");
  }
  // A page may centre its map on a place (the person's address); otherwise all of Britain.
  const centre = element.dataset.centre ? JSON.parse(element.dataset.centre) : null;
  if (centre) map.setView(centre, 15);
  else map.setView([52.8, -1.6], 6);
  element.twMap = map;
  return map;
}

// Zone geometry is GeoJSON (Polygon, MultiPolygon) or {type: "Circle", coordinates, radius_m}.
export function geometryLayer(geometry, style) {
  if (geometry.type === "Circle") {
    const [lon, lat] = geometry.coordinates;
    return L.circle([lat, lon], { radius: geometry.radius_m, ...style });
  }
  return L.geoJSON(geometry, { style: () => style });
}

export function zonesLayer(zones) {
  const group = L.featureGroup();
  for (const zone of zones || []) {
    const style = ZONE_STYLES[zone.kind] || ZONE_STYLES.exclusion_zone;
    geometryLayer(zone.geometry, style).bindTooltip(zone.name || zone.kind).addTo(group);
  }
  return group;
}

export function fitTo(map, layers, fallbackZoom = 14) {
  const bounds = L.latLngBounds([]);
  for (const layer of layers) {
    if (layer && layer.getBounds) {
      const b = layer.getBounds();
      if (b.isValid()) bounds.extend(b);
    } else if (layer && layer.getLatLng) {
      bounds.extend(layer.getLatLng());
    }
  }
  if (!bounds.isValid()) return;
  if (bounds.getNorthEast().equals(bounds.getSouthWest())) {
    map.setView(bounds.getCenter(), fallbackZoom);
  } else {
    map.fitBounds(bounds, { padding: [20, 20], maxZoom: 17 });
  }
}
