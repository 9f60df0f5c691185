//! Alerts about many vehicles at once. An operator manages a line and an incident, not
//! forty buses: vehicles running late because of one incident are one alert per
//! incident and line, vehicles late for no known reason one per line, crowded vehicles
//! one per line. Each group alert carries the vehicles it covers (how many, which),
//! is updated as they come and go, and clears once the group has been empty for a
//! while (a vehicle flickering over the threshold does not raise it again).

use std::collections::BTreeMap;

use compact_str::format_compact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamcity_core::{
    Alert, AlertKind, AlertState, Id, Severity, SubjectKind, TimestampMs, VehiclePosition,
    wire_name,
};

use crate::detector::Context;

/// The most vehicle ids an alert lists (the count is always whole).
pub const LISTED_VEHICLES: usize = 50;

/// What a group is: its kind of condition, its line, and the incident behind it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    /// Delay or crowding.
    pub kind: AlertKind,
    /// The line.
    pub route: Id,
    /// The incident behind it, if known.
    pub cause: Option<Id>,
}

impl GroupKey {
    /// The key as one string (what a vehicle's memory keeps).
    pub fn name(&self) -> Id {
        format_compact!(
            "{}|{}|{}",
            wire_name(&self.kind),
            self.route,
            self.cause.as_deref().unwrap_or("")
        )
    }
}

/// One vehicle in a group: the number that put it there (delay in seconds, or
/// passengers as a share of capacity in percent) and where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    value: i64,
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    key: GroupKey,
    /// The incident's label, when there is one.
    cause_label: Option<String>,
    members: BTreeMap<Id, Member>,
    /// The active alert's id.
    alert: Option<Id>,
    /// When the group last became empty.
    empty_since: Option<TimestampMs>,
    /// When its alert was raised.
    raised_at: TimestampMs,
}

/// Every group with members or an active alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Groups {
    groups: BTreeMap<Id, Group>,
}

/// How a group's alert reads: its severity, message and action, from its members.
pub struct Wording {
    /// How bad it is.
    pub severity: Severity,
    /// A one-line description.
    pub message: String,
    /// What to do.
    pub action: String,
}

impl Groups {
    /// Puts vehicle `p` in the group `key` (its value `value`, e.g. its delay), raising
    /// the group's alert when it has none, updating it when the members change.
    /// An empty group whose alert has waited its time to clear is cleared first (dated
    /// when it was due), so the result does not depend on when the watermark moved.
    pub fn join(
        &mut self,
        key: GroupKey,
        cause_label: Option<String>,
        p: &VehiclePosition,
        value: i64,
        cx: &mut Context<'_>,
    ) {
        let clear_after_ms = clear_after_ms(key.kind, cx);
        let name = key.name();
        let ts = p.timestamp;
        if let Some(g) = self.groups.get_mut(&name)
            && g.members.is_empty()
            && g.empty_since.is_some_and(|t| ts >= t + clear_after_ms)
        {
            let due = g.empty_since.unwrap_or(ts) + clear_after_ms;
            clear(g, due, cx);
        }
        let g = self.groups.entry(name).or_insert_with(|| Group {
            key,
            cause_label,
            members: BTreeMap::new(),
            alert: None,
            empty_since: None,
            raised_at: ts,
        });
        g.empty_since = None;
        let member = Member {
            value,
            lat: p.lat,
            lon: p.lon,
        };
        let new = g.members.insert(p.vehicle_id.clone(), member).is_none();
        settle(g, new, p, cx);
    }

    /// A new report `p` of a vehicle in group `name`, its value now `value`: raises the
    /// group's alert if that makes it worth one.
    pub fn refresh(&mut self, name: &str, p: &VehiclePosition, value: i64, cx: &mut Context<'_>) {
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        let Some(m) = g.members.get_mut(&p.vehicle_id) else {
            return;
        };
        m.value = value;
        m.lat = p.lat;
        m.lon = p.lon;
        if g.alert.is_none() {
            settle(g, false, p, cx);
        }
    }

    /// Takes vehicle `vehicle` out of group `name` at `ts`; the alert is updated while
    /// others remain, and clears after a while once none do.
    pub fn leave(&mut self, name: &str, vehicle: &str, ts: TimestampMs, cx: &mut Context<'_>) {
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        if g.members.remove(vehicle).is_none() {
            return;
        }
        if g.members.is_empty() {
            g.empty_since = Some(ts);
            if clear_after_ms(g.key.kind, cx) == 0 {
                clear(g, ts, cx);
            }
        } else if g.alert.is_some() {
            let mut a = alert(g, ts, cx);
            a.state = AlertState::Updated;
            cx.update(a);
        }
    }

    /// Clears the alerts of groups empty for long enough by the watermark.
    pub fn expire(&mut self, cx: &mut Context<'_>) {
        let watermark = cx.watermark;
        self.groups.retain(|_, g| {
            let after = clear_after_ms(g.key.kind, cx);
            match g.empty_since {
                Some(t) if g.members.is_empty() && watermark >= t + after => {
                    clear(g, t + after, cx);
                    false
                }
                _ => true,
            }
        });
    }

    /// Ends the groups of `route` at once (its vehicles went to another instance).
    pub fn release_line(&mut self, route: &str, ts: TimestampMs, cx: &mut Context<'_>) {
        self.groups.retain(|_, g| {
            if g.key.route != route {
                return true;
            }
            if let Some(id) = g.alert.take() {
                cx.clear(
                    &id,
                    ts,
                    format!("Line {route}: handed over to another processor instance"),
                );
            }
            false
        });
    }

    /// The lines with an active group alert caused by an incident.
    pub fn lines_under_incident(&self) -> impl Iterator<Item = &Id> {
        self.groups
            .values()
            .filter(|g| g.alert.is_some() && g.key.cause.is_some())
            .map(|g| &g.key.route)
    }

    /// Groups held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when no group is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Raises the group's alert once it is worth one (enough vehicles, or one far enough
/// gone); updates an active one when `new` joined.
fn settle(g: &mut Group, new: bool, p: &VehiclePosition, cx: &mut Context<'_>) {
    let ts = p.timestamp;
    if g.alert.is_none() {
        let (min_vehicles, alone) = match g.key.kind {
            AlertKind::Crowding => (cx.config.crowding.group_min_vehicles, 100),
            _ => (
                cx.config.delay.group_min_vehicles,
                i64::from(cx.config.delay.alone_s),
            ),
        };
        let worst = g.members.values().map(|m| m.value).max().unwrap_or(0);
        if g.members.len() < min_vehicles.max(1) && worst < alone {
            return;
        }
        g.raised_at = ts;
        let mut a = alert(g, ts, cx);
        a.lat = Some(p.lat);
        a.lon = Some(p.lon);
        g.alert = Some(a.alert_id.clone());
        cx.raise(a);
    } else if new {
        let mut a = alert(g, ts, cx);
        a.state = AlertState::Updated;
        cx.update(a);
    }
}

/// How long a group of `kind` stays alerted once empty, ms.
fn clear_after_ms(kind: AlertKind, cx: &Context<'_>) -> i64 {
    match kind {
        AlertKind::Crowding => cx.config.crowding.clear_after_ms,
        _ => cx.config.delay.clear_after_ms,
    }
}

fn clear(g: &mut Group, ts: TimestampMs, cx: &mut Context<'_>) {
    if let Some(id) = g.alert.take() {
        let what = match g.key.kind {
            AlertKind::Crowding => "no vehicle crowded",
            _ => "every vehicle back on time",
        };
        cx.clear(&id, ts, format!("Line {}: {what}", g.key.route));
    }
}

/// The group's alert as it stands at `ts`.
fn alert(g: &Group, ts: TimestampMs, cx: &Context<'_>) -> Alert {
    let key = &g.key;
    let n = g.members.len();
    let worst = g
        .members
        .iter()
        .max_by_key(|(_, m)| m.value)
        .map(|(id, m)| (id.clone(), m.clone()));
    let worst_value = worst.as_ref().map(|(_, m)| m.value).unwrap_or(0);
    let wording = match key.kind {
        AlertKind::Crowding => crowding_wording(g, n, worst_value),
        _ => delay_wording(g, n, worst_value, cx),
    };
    let mut evidence = serde_json::Map::new();
    evidence.insert("vehicle_count".into(), json!(n));
    evidence.insert(
        "vehicles".into(),
        json!(g.members.keys().take(LISTED_VEHICLES).collect::<Vec<_>>()),
    );
    evidence.insert("route_id".into(), json!(key.route));
    match key.kind {
        AlertKind::Crowding => {
            evidence.insert("max_load_percent".into(), json!(worst_value));
        }
        _ => {
            evidence.insert("max_delay_s".into(), json!(worst_value));
            evidence.insert("threshold_s".into(), json!(cx.config.delay.threshold_s));
        }
    }
    if let Some(cause) = &key.cause {
        evidence.insert("likely_cause".into(), json!(cause));
        evidence.insert("likely_cause_label".into(), json!(g.cause_label));
    }
    let (lat, lon) = worst.map(|(_, m)| (m.lat, m.lon)).unzip();
    let cause = key.cause.as_deref().unwrap_or("line");
    Alert {
        alert_id: format_compact!(
            "{}:{}:{cause}:{}",
            wire_name(&key.kind),
            key.route,
            g.raised_at
        ),
        kind: key.kind,
        state: AlertState::Raised,
        severity: wording.severity,
        subject_kind: SubjectKind::Route,
        subject_id: key.route.clone(),
        lat,
        lon,
        window_start: g.raised_at,
        window_end: ts,
        raised_at: g.raised_at,
        timestamp: ts,
        message: wording.message,
        action: wording.action,
        evidence,
        acknowledged: None,
        muted_until: None,
    }
}

fn vehicles(g: &Group, n: usize) -> String {
    let ids: Vec<&str> = g.members.keys().take(5).map(|id| id.as_str()).collect();
    let more = if n > ids.len() {
        format!(" and {} more", n - ids.len())
    } else {
        String::new()
    };
    format!("{}{more}", ids.join(", "))
}

fn delay_wording(g: &Group, n: usize, worst_s: i64, cx: &Context<'_>) -> Wording {
    let route = &g.key.route;
    let threshold = i64::from(cx.config.delay.threshold_s);
    let severity = if worst_s >= 3 * threshold || n >= 5 {
        Severity::High
    } else {
        Severity::Moderate
    };
    let late = if n == 1 {
        format!("{} running {} min late", vehicles(g, n), worst_s / 60)
    } else {
        format!(
            "{n} vehicles running late, up to {} min ({})",
            worst_s / 60,
            vehicles(g, n)
        )
    };
    match &g.cause_label {
        Some(label) => Wording {
            severity,
            message: format!("Line {route}: {late}; likely cause: {label}"),
            action: format!(
                "Hold the vehicles behind to even the gaps; divert line {route} round the {label} if it lasts."
            ),
        },
        None => Wording {
            severity,
            message: format!("Line {route}: {late}"),
            action: "Check with the drivers; short-turn or hold at a timepoint to recover the timetable."
                .into(),
        },
    }
}

fn crowding_wording(g: &Group, n: usize, worst_percent: i64) -> Wording {
    let route = &g.key.route;
    let severity = if worst_percent >= 100 && n >= 3 {
        Severity::High
    } else {
        Severity::Moderate
    };
    let what = if n == 1 {
        format!("{} is {worst_percent}% full", vehicles(g, n))
    } else {
        format!(
            "{n} vehicles crowded, up to {worst_percent}% full ({})",
            vehicles(g, n)
        )
    };
    Wording {
        severity,
        message: format!("Line {route}: {what}"),
        action: format!("Add a vehicle to line {route} or run a short working where it fills."),
    }
}
