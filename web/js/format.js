// Text helpers: the element lookup by id, HTML escaping, and the formatting of
// durations, delays and ages shown in the panel and the popups.

export const $ = (id) => document.getElementById(id);
export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
export const words = (s) => String(s || '').replace(/_/g, ' ');

function formatDuration(totalS) {
  const m = Math.floor(totalS / 60), s = totalS % 60;
  return [m ? `${m} min` : '', s || !m ? `${s} s` : ''].filter(Boolean).join(' ');
}
export function formatDelay(d) {
  if (!d) return 'on time';
  return d > 0 ? `+${formatDuration(d)} late` : `${formatDuration(-d)} early`;
}
export function formatAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}
