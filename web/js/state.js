// The page's shared state: the network, the latest vehicle positions and their
// animation tracks, the active alerts, stream bookkeeping and the filters; and the
// server clock estimate derived from it.

export const state = {
  routes: new Map(),    // route_id -> route
  stops: new Map(),     // stop_id -> stop
  vehicles: new Map(),  // vehicle_id -> latest VehiclePosition
  tracks: new Map(),    // vehicle_id -> Track (animation state, see upsertVehicle)
  alerts: new Map(),    // alert_id -> active Alert
  lastSeq: null,
  epoch: null,          // the server run the last snapshot came from
  serverTime: 0,        // latest `time` received from the server
  serverTimeAt: 0,      // performance.now() when it was received
  gaps: 0,
  hiddenLines: new Set(),
  hiddenKinds: new Set(),
  eventCount: 0,        // vehicle updates + alert records since the last rate tick
  eventRate: null,
  selectedId: null,     // vehicle whose popup is open
};

// Server clock estimate, immune to a skewed client clock.
export const serverNow = () => state.serverTime + (performance.now() - state.serverTimeAt);
