// A read-only map of a person's zones and curfew address (person page, order page).
import { createMap, fitTo, readJson, zonesLayer } from "./map.js";

const L = window.L;

for (const element of document.querySelectorAll("[data-zones-map]")) {
  const data = readJson(element.dataset.zonesMap) || { zones: [], addresses: [] };
  const map = createMap(element);
  const zones = zonesLayer(data.zones).addTo(map);
  const addresses = L.featureGroup().addTo(map);
  for (const address of data.addresses || []) {
    L.circleMarker([address.lat, address.lon], { radius: 7, color: "#1d70b8", fillOpacity: 0.8 })
      .bindTooltip(address.label)
      .addTo(addresses);
  }
  fitTo(map, [zones, addresses]);
  element.dataset.zones = String(zones.getLayers().length);
  element.dataset.addresses = String(addresses.getLayers().length);
  element.dataset.ready = "true";
}
