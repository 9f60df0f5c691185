//! A scenario file, read and checked: pools, counters, and streams of weighted events
//! whose records have topics, keys and generated fields. The format is described in
//! `docs/scenarios.md`.

use std::rc::Rc;

use toml::Value as Toml;

use crate::ScenarioError;
use crate::generator::{self, Format, Gen, Names};
use crate::timing::{Gaps, Timing};

/// A scenario, parsed and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it makes.
    pub description: String,
    pub(crate) pools: Vec<PoolSpec>,
    pub(crate) counters: Vec<CounterSpec>,
    pub(crate) seqs: Vec<i64>,
    /// Its streams.
    pub streams: Vec<Stream>,
}

#[derive(Debug, Clone)]
pub(crate) struct PoolSpec {
    pub name: String,
    pub count: usize,
    pub id: Format,
    pub first: i64,
    pub fields: Vec<(String, usize, Gen)>,
    pub slot_count: usize,
    /// Speed range, metres a second, for pools whose items move along the streets.
    pub moves: Option<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub(crate) struct CounterSpec {
    pub name: String,
    pub initial: Gen,
    pub min: f64,
    pub max: f64,
}

/// A stream of events with its timing.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Its name.
    pub name: String,
    /// When its events come.
    pub timing: Timing,
    pub(crate) events: Vec<Event>,
    pub(crate) cumulative: Vec<f64>,
    /// Whether its events are the twin's disruptions (`from = "twin"`): each comes
    /// when the twin raises one, and its `every` is the mean gap between the twin's
    /// incidents.
    pub from_twin: bool,
}

impl Stream {
    /// Its events' names and weights (as shares of 1).
    pub fn mix(&self) -> Vec<(String, f64)> {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let mut before = 0.0;
        self.events
            .iter()
            .zip(&self.cumulative)
            .map(|(e, c)| {
                let share = (c - before) / total;
                before = *c;
                (e.name.clone(), share)
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub name: String,
    /// For a stream from the twin: the kind of disruption it answers.
    pub on: Option<String>,
    /// For a stream from the twin: the slots the disruption's values go to.
    pub given: Vec<(String, usize)>,
    pub picks: Vec<usize>,
    pub lets: Vec<(usize, Gen)>,
    pub records: Vec<RecordSpec>,
    pub slot_count: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct RecordSpec {
    pub topic: String,
    /// Each field's name as JSON, with its colon: `"name":`.
    pub names_json: Vec<Vec<u8>>,
    pub key: Option<Gen>,
    pub fields: Vec<(Rc<str>, usize, Gen)>,
    pub probability: f64,
}

impl Scenario {
    /// Reads a scenario from the text of its file (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| ScenarioError::Toml {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        parse_doc(&doc).map_err(|e| e.in_file(origin))
    }

    /// Every topic its records go to, in the order they first appear.
    pub fn topics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self
            .streams
            .iter()
            .flat_map(|s| &s.events)
            .flat_map(|e| &e.records)
        {
            if !out.contains(&r.topic) {
                out.push(r.topic.clone());
            }
        }
        out
    }

    /// Mean events a second, all streams together.
    pub fn events_per_second(&self) -> f64 {
        self.streams
            .iter()
            .map(|s| {
                let burst = 1.0
                    + s.timing.burst_p
                        * (f64::from(s.timing.burst_size.0 + s.timing.burst_size.1) / 2.0 - 1.0);
                burst / s.timing.gaps.mean().max(1e-9)
            })
            .sum()
    }
}

fn parse_doc(doc: &toml::Table) -> Result<Scenario, ScenarioError> {
    known_keys(
        doc,
        "",
        &["name", "description", "pools", "counters", "streams"],
    )?;
    let name = match doc.get("name") {
        Some(Toml::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(ScenarioError::at("name", "a scenario needs a name".into())),
    };
    let description = doc
        .get("description")
        .and_then(Toml::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut names = Names::default();
    let mut pools = Vec::new();
    if let Some(t) = doc.get("pools") {
        let t = t
            .as_table()
            .ok_or_else(|| ScenarioError::at("pools", "a table of pools".into()))?;
        for (pool_name, spec) in t {
            let pool = parse_pool(pool_name, spec, &mut names)?;
            names.pools.push((
                pool_name.clone(),
                pool.fields.iter().map(|(n, ..)| n.clone()).collect(),
                pool.moves.is_some(),
            ));
            pools.push(pool);
        }
    }
    let mut counters = Vec::new();
    if let Some(t) = doc.get("counters") {
        let t = t
            .as_table()
            .ok_or_else(|| ScenarioError::at("counters", "a table of counters".into()))?;
        for (counter_name, spec) in t {
            let path = format!("counters.{counter_name}");
            let spec = spec
                .as_table()
                .ok_or_else(|| ScenarioError::at(&path, "a table".into()))?;
            known_keys(spec, &path, &["initial", "min", "max"])?;
            names.slots.clear();
            let initial = match spec.get("initial") {
                Some(v) => generator::parse(v, &format!("{path}.initial"), &mut names)?,
                None => Gen::Const(crate::Val::Int(0)),
            };
            let bound = |k: &str, default: f64| -> Result<f64, ScenarioError> {
                match spec.get(k) {
                    None => Ok(default),
                    Some(v) => number(v)
                        .ok_or_else(|| ScenarioError::at(&path, format!("`{k}` must be a number"))),
                }
            };
            counters.push(CounterSpec {
                name: counter_name.clone(),
                initial,
                min: bound("min", f64::MIN)?,
                max: bound("max", f64::MAX)?,
            });
            names.counters.push(counter_name.clone());
        }
    }
    let streams = match doc.get("streams") {
        Some(Toml::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(k, s)| parse_stream(s, &format!("streams[{k}]"), &mut names))
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(ScenarioError::at(
                "streams",
                "a scenario needs at least one [[streams]]".into(),
            ));
        }
    };
    Ok(Scenario {
        name,
        description,
        pools,
        counters,
        seqs: names.seqs,
        streams,
    })
}

fn parse_pool(name: &str, spec: &Toml, names: &mut Names) -> Result<PoolSpec, ScenarioError> {
    let path = format!("pools.{name}");
    let t = spec
        .as_table()
        .ok_or_else(|| ScenarioError::at(&path, "a pool is a table".into()))?;
    known_keys(t, &path, &["count", "id", "first", "fields", "moves"])?;
    let count = match t.get("count") {
        Some(Toml::Integer(n)) if (1..=10_000_000).contains(n) => *n as usize,
        _ => {
            return Err(ScenarioError::at(
                &path,
                "`count` must be 1 to 10,000,000".into(),
            ));
        }
    };
    let id = match t.get("id") {
        Some(Toml::String(s)) => Format::parse(s).map_err(|m| ScenarioError::at(&path, m))?,
        None => Format::parse(&format!("{name}-{{}}")).map_err(|m| ScenarioError::at(&path, m))?,
        Some(other) => {
            return Err(ScenarioError::at(
                &path,
                format!("`id` is a format such as \"PROD-{{:04}}\", not {other}"),
            ));
        }
    };
    let first = match t.get("first") {
        None => 1,
        Some(v) => v
            .as_integer()
            .ok_or_else(|| ScenarioError::at(&path, "`first` is an integer".into()))?,
    };
    names.slots.clear();
    names.slot_count = 0;
    names.picks.clear();
    let mut fields = Vec::new();
    if let Some(f) = t.get("fields") {
        let f = f
            .as_table()
            .ok_or_else(|| ScenarioError::at(&path, "`fields` is a table".into()))?;
        for (field, g) in f {
            let parsed = generator::parse(g, &format!("{path}.fields.{field}"), names)?;
            let slot = names.bind(field);
            fields.push((field.clone(), slot, parsed));
        }
    }
    let moves = match t.get("moves") {
        None => None,
        Some(Toml::Table(m)) => {
            known_keys(m, &format!("{path}.moves"), &["speed_kmh"])?;
            let (lo, hi) = match m.get("speed_kmh").map(|v| (v, v.as_array())) {
                Some((_, Some(a))) if a.len() == 2 => (number(&a[0]), number(&a[1])),
                Some((v, None)) => (number(v), number(v)),
                _ => (None, None),
            };
            match (lo, hi) {
                (Some(lo), Some(hi)) if 0.0 <= lo && lo <= hi && hi <= 1000.0 => {
                    Some((lo / 3.6, hi / 3.6))
                }
                _ => {
                    return Err(ScenarioError::at(
                        &format!("{path}.moves"),
                        "`speed_kmh` is a speed or [slowest, fastest], 0 to 1000".into(),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ScenarioError::at(
                &path,
                "`moves` is a table: { speed_kmh = [20, 50] }".into(),
            ));
        }
    };
    Ok(PoolSpec {
        name: name.to_owned(),
        count,
        id,
        first,
        fields,
        slot_count: names.slot_count,
        moves,
    })
}

fn parse_stream(spec: &Toml, path: &str, names: &mut Names) -> Result<Stream, ScenarioError> {
    let t = spec
        .as_table()
        .ok_or_else(|| ScenarioError::at(path, "a stream is a table".into()))?;
    known_keys(
        t,
        path,
        &[
            "name", "every", "rate", "gap", "burst", "profile", "events", "from",
        ],
    )?;
    let from_twin = match t.get("from") {
        None => false,
        Some(Toml::String(s)) if s == "twin" => true,
        Some(other) => {
            return Err(ScenarioError::at(
                path,
                format!("`from` can only be \"twin\" (the twin's disruptions), not {other}"),
            ));
        }
    };
    let name = t
        .get("name")
        .and_then(Toml::as_str)
        .ok_or_else(|| ScenarioError::at(path, "a stream needs a name".into()))?
        .to_owned();
    let positive = |k: &str| -> Result<Option<f64>, ScenarioError> {
        match t.get(k) {
            None => Ok(None),
            Some(v) => number(v)
                .filter(|x| *x > 0.0 && x.is_finite())
                .map(Some)
                .ok_or_else(|| ScenarioError::at(path, format!("`{k}` must be a number > 0"))),
        }
    };
    let gaps = match (positive("every")?, positive("rate")?, t.get("gap")) {
        (Some(s), None, None) => Gaps::Every(s),
        (None, Some(r), None) => Gaps::Exponential(1.0 / r),
        (None, None, Some(g)) => match g
            .as_array()
            .map(|a| a.iter().map(number).collect::<Vec<_>>())
        {
            Some(v) if matches!(v[..], [Some(a), Some(b)] if 0.0 <= a && a <= b && b > 0.0) => {
                Gaps::Uniform(v[0].unwrap_or(0.0), v[1].unwrap_or(0.0))
            }
            _ => {
                return Err(ScenarioError::at(
                    path,
                    "`gap` is [shortest, longest] seconds, 0 ≤ shortest ≤ longest".into(),
                ));
            }
        },
        _ => {
            return Err(ScenarioError::at(
                path,
                "give the stream one of `every` (seconds), `rate` (events a second, Poisson) or `gap` ([min, max] seconds)".into(),
            ));
        }
    };
    let (burst_p, burst_size) = match t.get("burst") {
        None => (0.0, (1, 1)),
        Some(Toml::Table(b)) => {
            known_keys(b, &format!("{path}.burst"), &["p", "size"])?;
            let p = b
                .get("p")
                .and_then(number)
                .filter(|p| (0.0..=1.0).contains(p));
            let size = match b.get("size") {
                Some(Toml::Integer(n)) => Some((*n, *n)),
                Some(Toml::Array(a)) if a.len() == 2 => a[0].as_integer().zip(a[1].as_integer()),
                _ => None,
            }
            .filter(|(lo, hi)| 1 <= *lo && lo <= hi && *hi <= 1000);
            match (p, size) {
                (Some(p), Some((lo, hi))) => (p, (lo as u32, hi as u32)),
                _ => {
                    return Err(ScenarioError::at(
                        &format!("{path}.burst"),
                        "a burst is { p = probability, size = n or [fewest, most] } (1 to 1000)"
                            .into(),
                    ));
                }
            }
        }
        Some(_) => return Err(ScenarioError::at(path, "`burst` is a table".into())),
    };
    let profile = match t.get("profile") {
        None => None,
        Some(Toml::Array(a)) if a.len() == 24 => {
            let mut p = [0.0; 24];
            for (k, v) in a.iter().enumerate() {
                p[k] = number(v)
                    .filter(|x| *x >= 0.0 && x.is_finite())
                    .ok_or_else(|| {
                        ScenarioError::at(
                            &format!("{path}.profile[{k}]"),
                            "a multiplier ≥ 0".into(),
                        )
                    })?;
            }
            if p.iter().all(|x| *x == 0.0) {
                return Err(ScenarioError::at(
                    path,
                    "a profile cannot be 0 all day".into(),
                ));
            }
            Some(p)
        }
        Some(_) => {
            return Err(ScenarioError::at(
                path,
                "`profile` is 24 multipliers, one per hour from midnight".into(),
            ));
        }
    };
    let events = match t.get("events") {
        Some(Toml::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(ScenarioError::at(
                path,
                "a stream needs at least one [[streams.events]]".into(),
            ));
        }
    };
    let mut parsed = Vec::new();
    let mut weights = Vec::new();
    for (k, e) in events.iter().enumerate() {
        let epath = format!("{path}.events[{k}]");
        let (event, weight) = parse_event(e, &epath, names, from_twin)?;
        parsed.push(event);
        weights.push(Toml::Float(weight));
    }
    let cumulative = generator::cumulative(&Toml::Array(weights), parsed.len())
        .map_err(|m| ScenarioError::at(path, format!("events' weights: {m}")))?;
    Ok(Stream {
        name,
        timing: Timing {
            gaps,
            burst_p,
            burst_size,
            profile,
        },
        events: parsed,
        cumulative,
        from_twin,
    })
}

/// The values a disruption of the twin gives its event, as `twin.<name>`.
pub const TWIN_VALUES: [&str; 13] = [
    "alert_id",
    "type",
    "line",
    "line_id",
    "mode",
    "severity",
    "reason",
    "delay_minutes",
    "vehicle_count",
    "affected_stations",
    "alternative_routes",
    "resolution_ms",
    "position",
];

/// The kinds of disruption of the twin.
pub const TWIN_KINDS: [&str; 3] = ["delay", "route_change", "suspension"];

fn parse_event(
    spec: &Toml,
    path: &str,
    names: &mut Names,
    from_twin: bool,
) -> Result<(Event, f64), ScenarioError> {
    let t = spec
        .as_table()
        .ok_or_else(|| ScenarioError::at(path, "an event is a table".into()))?;
    known_keys(t, path, &["name", "weight", "pick", "let", "records", "on"])?;
    let on = match (t.get("on"), from_twin) {
        (None, false) => None,
        (Some(Toml::String(k)), true) if TWIN_KINDS.contains(&k.as_str()) => Some(k.clone()),
        (_, true) => {
            return Err(ScenarioError::at(
                path,
                format!(
                    "an event of the twin's disruptions needs `on`, one of: {}",
                    TWIN_KINDS.join(", ")
                ),
            ));
        }
        (Some(_), false) => {
            return Err(ScenarioError::at(
                path,
                "`on` is for streams with from = \"twin\"".into(),
            ));
        }
    };
    let name = t
        .get("name")
        .and_then(Toml::as_str)
        .unwrap_or("event")
        .to_owned();
    let weight = match t.get("weight") {
        None => 1.0,
        Some(w) => number(w)
            .filter(|w| *w >= 0.0 && w.is_finite())
            .ok_or_else(|| ScenarioError::at(path, "`weight` must be a number ≥ 0".into()))?,
    };
    names.slots.clear();
    names.slot_count = 0;
    names.picks.clear();
    let given = if from_twin {
        TWIN_VALUES
            .iter()
            .map(|v| (v.to_string(), names.bind(&format!("twin.{v}"))))
            .collect()
    } else {
        Vec::new()
    };
    let mut picks = Vec::new();
    if let Some(p) = t.get("pick") {
        let p = p.as_table().ok_or_else(|| {
            ScenarioError::at(path, "`pick` is a table: { name = \"pool\" }".into())
        })?;
        for (as_name, pool) in p {
            let pool_name = pool.as_str().unwrap_or_default();
            let k = names
                .pools
                .iter()
                .position(|(n, ..)| n == pool_name)
                .ok_or_else(|| {
                    ScenarioError::at(
                        &format!("{path}.pick.{as_name}"),
                        format!("no pool named {pool}"),
                    )
                })?;
            names.picks.push((as_name.clone(), k));
            picks.push(k);
        }
    }
    let mut lets = Vec::new();
    if let Some(l) = t.get("let") {
        let l = l
            .as_table()
            .ok_or_else(|| ScenarioError::at(path, "`let` is a table of named values".into()))?;
        for (n, g) in l {
            let parsed = generator::parse(g, &format!("{path}.let.{n}"), names)?;
            lets.push((names.bind(n), parsed));
        }
    }
    let records = match t.get("records") {
        Some(Toml::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(ScenarioError::at(
                path,
                "an event needs at least one [[…records]]".into(),
            ));
        }
    };
    let mut out = Vec::new();
    for (k, r) in records.iter().enumerate() {
        let rpath = format!("{path}.records[{k}]");
        let r = r
            .as_table()
            .ok_or_else(|| ScenarioError::at(&rpath, "a record is a table".into()))?;
        known_keys(r, &rpath, &["topic", "key", "value", "p"])?;
        let topic = match r.get("topic") {
            Some(Toml::String(s)) if valid_topic(s) => s.clone(),
            _ => {
                return Err(ScenarioError::at(
                    &rpath,
                    "`topic` is a Kafka topic name (letters, digits, . _ -; up to 249)".into(),
                ));
            }
        };
        let probability = match r.get("p") {
            None => 1.0,
            Some(p) => number(p)
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| ScenarioError::at(&rpath, "`p` is a probability, 0 to 1".into()))?,
        };
        let value = r.get("value").and_then(Toml::as_table).ok_or_else(|| {
            ScenarioError::at(&rpath, "a record needs a `value` table of fields".into())
        })?;
        let mut fields = Vec::new();
        for (field, g) in value {
            let parsed = generator::parse(g, &format!("{rpath}.value.{field}"), names)?;
            fields.push((Rc::from(field.as_str()), names.bind(field), parsed));
        }
        // The key may name the record's own fields.
        let key = match r.get("key") {
            None => None,
            Some(k) => Some(generator::parse(k, &format!("{rpath}.key"), names)?),
        };
        let names_json = fields
            .iter()
            .map(|(name, ..)| {
                let mut json = Vec::new();
                crate::value::write_str(&mut json, name);
                json.push(b':');
                json
            })
            .collect();
        out.push(RecordSpec {
            topic,
            names_json,
            key,
            fields,
            probability,
        });
    }
    Ok((
        Event {
            name,
            on,
            given,
            picks,
            lets,
            records: out,
            slot_count: names.slot_count,
        },
        weight,
    ))
}

/// Whether Kafka accepts `s` as a topic name.
pub fn valid_topic(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn number(v: &Toml) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn known_keys(t: &toml::Table, path: &str, allowed: &[&str]) -> Result<(), ScenarioError> {
    match t.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ScenarioError::at(
            if path.is_empty() { k } else { path },
            format!(
                "unknown key `{k}` (expected one of: {})",
                allowed.join(", ")
            ),
        )),
    }
}
