// The Leaflet map and its shared renderers and layers: routes, stops, incident areas,
// the optional OpenStreetMap basemap, and the scale control.

export const map = L.map('map', { zoomControl: true, minZoom: 3, maxZoom: 19 }).setView([40.7128, -74.006], 12);
export const sharedCanvas = L.canvas({ padding: 0.3 });
export const flashRenderer = L.svg();
export const routesLayer = L.layerGroup().addTo(map);
export const stopsLayer = L.layerGroup().addTo(map);
export const incidentsLayer = L.layerGroup().addTo(map); // incident areas, see upsertIncident
export const routeLines = new Map(); // route_id -> L.Polyline
// Optional basemap: off by default, so nothing is fetched from outside unless asked.
export const osm = L.tileLayer('https://tile.openstreetmap.org/{z}/{x}/{y}.png',
  { maxZoom: 19, attribution: '&copy; OpenStreetMap contributors' });
L.control.scale({ imperial: false }).addTo(map);
