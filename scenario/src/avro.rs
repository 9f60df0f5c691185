//! Avro for a scenario: one schema per topic derived from its records' generators (a
//! record, or a union of records when a topic carries several kinds, e.g. RideMatch's
//! driver updates and rider requests), and its values encoded to it, for the Confluent
//! wire format (magic byte, schema id, datum) and Avro object container files.

use std::collections::BTreeMap;
use std::rc::Rc;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Value as Json, json};

use crate::ScenarioError;
use crate::generator::{Gen, Target};
use crate::scenario::{Event, RecordSpec, Scenario, TWIN_VALUES};
use crate::value::Val;

/// A value's Avro type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// null.
    Null,
    /// boolean.
    Bool,
    /// long.
    Long,
    /// double.
    Double,
    /// string.
    Str,
    /// A position: a record of `lat` and `lon`.
    Pos,
    /// An array.
    Array(Box<Ty>),
    /// A record: its fields in order.
    Record(Vec<(Rc<str>, Ty)>),
    /// One of these (never two of one kind).
    Union(Vec<Ty>),
}

impl Ty {
    /// The one type for values of `a` and `b`, when there is one.
    fn unify(a: &Ty, b: &Ty) -> Result<Ty, String> {
        Ok(match (a, b) {
            (x, y) if x == y => x.clone(),
            (Ty::Long, Ty::Double) | (Ty::Double, Ty::Long) => Ty::Double,
            (Ty::Array(x), Ty::Array(y)) => Ty::Array(Box::new(Ty::unify(x, y)?)),
            (Ty::Union(xs), y) | (y, Ty::Union(xs)) => {
                let mut out = xs.clone();
                for t in match y {
                    Ty::Union(ys) => ys.clone(),
                    t => vec![t.clone()],
                } {
                    match out.iter().position(|o| o.kind() == t.kind()) {
                        Some(k) => out[k] = Ty::unify(&out[k], &t)?,
                        None => out.push(t),
                    }
                }
                Ty::Union(out)
            }
            (x, y) if x.kind() == y.kind() => {
                return Err(format!("two different {} shapes", x.kind()));
            }
            (x, y) => Ty::Union(vec![x.clone(), y.clone()]),
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Bool => "boolean",
            Ty::Long | Ty::Double => "number",
            Ty::Str => "string",
            Ty::Pos | Ty::Record(_) => "record",
            Ty::Array(_) => "array",
            Ty::Union(_) => "union",
        }
    }

    /// The Avro schema of this type; records are named `name`, their nested records
    /// after it.
    fn schema(&self, name: &str) -> Json {
        match self {
            Ty::Null => json!("null"),
            Ty::Bool => json!("boolean"),
            Ty::Long => json!("long"),
            Ty::Double => json!("double"),
            Ty::Str => json!("string"),
            Ty::Pos => json!({"type": "record", "name": name, "fields": [
                {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}),
            Ty::Array(item) => {
                json!({"type": "array", "items": item.schema(&format!("{name}_item"))})
            }
            Ty::Record(fields) => json!({
                "type": "record",
                "name": name,
                "fields": fields.iter().map(|(f, t)| json!({"name": &**f, "type": t.schema(&format!("{name}_{}", avro_name(f)))})).collect::<Vec<_>>(),
            }),
            Ty::Union(branches) => Json::Array(
                branches
                    .iter()
                    .enumerate()
                    .map(|(k, t)| t.schema(&format!("{name}_{k}")))
                    .collect(),
            ),
        }
    }

    /// `v` as a value of this type.
    fn value(&self, v: &Val) -> Avro {
        match (self, v) {
            (Ty::Union(branches), v) => {
                let k = branches.iter().position(|b| b.accepts(v)).unwrap_or(0);
                Avro::Union(k as u32, Box::new(branches[k].value(v)))
            }
            (Ty::Null, _) => Avro::Null,
            (Ty::Bool, Val::Bool(b)) => Avro::Boolean(*b),
            (Ty::Long, v) => Avro::Long(v.as_f64().map_or(0, |f| f as i64)),
            (Ty::Double, v) => Avro::Double(v.as_f64().unwrap_or(f64::NAN)),
            (Ty::Str, Val::Str(s)) => Avro::String(s.to_string()),
            (Ty::Str, v) => {
                let mut s = String::new();
                v.write_text(&mut s);
                Avro::String(s)
            }
            (Ty::Pos, v) => {
                let (lat, lon) = match v {
                    Val::Pos(lat, lon) => (*lat, *lon),
                    _ => (f64::NAN, f64::NAN),
                };
                // To the micro-degree, as the JSON writes it.
                Avro::Record(vec![
                    ("lat".into(), Avro::Double(crate::value::round(lat, 6))),
                    ("lon".into(), Avro::Double(crate::value::round(lon, 6))),
                ])
            }
            (Ty::Array(item), Val::List(items)) => {
                Avro::Array(items.iter().map(|i| item.value(i)).collect())
            }
            (Ty::Array(_), _) => Avro::Array(Vec::new()),
            (Ty::Record(fields), v) => Avro::Record(
                fields
                    .iter()
                    .map(|(f, t)| (f.to_string(), t.value(&v.part(f).unwrap_or(Val::Null))))
                    .collect(),
            ),
            (Ty::Bool, _) => Avro::Boolean(false),
        }
    }

    fn accepts(&self, v: &Val) -> bool {
        matches!(
            (self, v),
            (Ty::Null, Val::Null)
                | (Ty::Bool, Val::Bool(_))
                | (Ty::Long, Val::Int(_))
                | (Ty::Double, Val::Int(_) | Val::Float(..))
                | (Ty::Str, Val::Str(_))
                | (Ty::Pos, Val::Pos(..))
                | (Ty::Array(_), Val::List(_))
                | (Ty::Record(_), Val::Obj(_))
        )
    }
}

/// An Avro name from any text: letters, digits and `_`, not starting with a digit.
pub fn avro_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A topic's schema.
#[derive(Debug, Clone)]
pub struct TopicSchema {
    /// The topic, as the scenario names it.
    pub topic: String,
    /// The schema, as JSON text (what a schema registry is given).
    pub json: String,
    /// The schema, parsed.
    pub schema: Schema,
}

/// How a scenario's records are written in Avro.
#[derive(Debug, Clone)]
pub struct AvroPlan {
    /// One schema per topic, in the order the topics first appear.
    pub topics: Vec<TopicSchema>,
    /// For each stream, event and record: its topic, its branch of the topic's union
    /// (when the topic has several kinds of record), and its record type.
    records: Vec<Vec<Vec<RecordPlan>>>,
}

/// A record's topic (index), its branch of the topic's union, and its type.
type RecordPlan = (usize, Option<u32>, Ty);

impl AvroPlan {
    /// The schemas of `scenario`'s topics, from its generators.
    pub fn derive(scenario: &Scenario) -> Result<AvroPlan, ScenarioError> {
        let pool_types: Vec<Vec<Ty>> = scenario
            .pools
            .iter()
            .map(|p| {
                let mut slots = vec![Ty::Null; p.slot_count];
                p.fields
                    .iter()
                    .map(|(_, slot, g)| {
                        let t = infer(g, &slots, &[], &[], scenario);
                        slots[*slot] = t.clone();
                        t
                    })
                    .collect()
            })
            .collect();
        let namespace = format!("streamcity.scenario.{}", avro_name(&scenario.name));
        // Each record's type, and the records of each topic.
        let mut by_topic: BTreeMap<String, Vec<(String, Ty)>> = BTreeMap::new();
        let mut records = Vec::new();
        for (s, stream) in scenario.streams.iter().enumerate() {
            let mut events = Vec::new();
            for (e, event) in stream.events.iter().enumerate() {
                let types = event_types(event, &pool_types, scenario).map_err(|m| {
                    ScenarioError::at(
                        &format!("streams[{s}].events[{e}]"),
                        format!("for Avro: {m}"),
                    )
                })?;
                for (r, (spec, ty)) in event.records.iter().zip(&types).enumerate() {
                    let name = format!("{}_{}", avro_name(&spec.topic), avro_name(&event.name));
                    let kinds = by_topic.entry(spec.topic.clone()).or_default();
                    if !kinds.iter().any(|(_, t)| t == ty) {
                        let name = if kinds.iter().any(|(n, _)| *n == name) {
                            format!("{name}_{r}")
                        } else {
                            name
                        };
                        kinds.push((name, ty.clone()));
                    }
                }
                events.push(types);
            }
            records.push(events);
        }
        let mut topics = Vec::new();
        for topic in scenario.topics() {
            let kinds = &by_topic[&topic];
            let schema = if kinds.len() == 1 {
                let mut s = kinds[0].1.schema(&avro_name(&topic));
                s["namespace"] = json!(namespace);
                s
            } else {
                Json::Array(
                    kinds
                        .iter()
                        .map(|(name, ty)| {
                            let mut s = ty.schema(name);
                            s["namespace"] = json!(namespace);
                            s
                        })
                        .collect(),
                )
            };
            let text = schema.to_string();
            let parsed = Schema::parse_str(&text).map_err(|e| {
                ScenarioError::at(
                    &format!("topic {topic}"),
                    format!("its Avro schema is refused: {e}"),
                )
            })?;
            topics.push(TopicSchema {
                topic,
                json: text,
                schema: parsed,
            });
        }
        let plan_records = scenario
            .streams
            .iter()
            .zip(records)
            .map(|(stream, events)| {
                stream
                    .events
                    .iter()
                    .zip(events)
                    .map(|(event, types)| {
                        event
                            .records
                            .iter()
                            .zip(types)
                            .map(|(spec, ty)| {
                                let t = topics
                                    .iter()
                                    .position(|x| x.topic == spec.topic)
                                    .unwrap_or(0);
                                let kinds = &by_topic[&spec.topic];
                                let branch = (kinds.len() > 1).then(|| {
                                    kinds.iter().position(|(_, k)| *k == ty).unwrap_or(0) as u32
                                });
                                (t, branch, ty)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(AvroPlan {
            topics,
            records: plan_records,
        })
    }

    /// The Avro value of record `r` of event `e` of stream `s`, from the event's
    /// values; and its topic's index.
    pub fn value(
        &self,
        s: usize,
        e: usize,
        r: usize,
        spec_fields: &[(Rc<str>, usize, Gen)],
        slots: &[Val],
    ) -> (usize, Avro) {
        let (topic, branch, ty) = &self.records[s][e][r];
        let Ty::Record(fields) = ty else {
            return (*topic, Avro::Null);
        };
        let record = Avro::Record(
            fields
                .iter()
                .zip(spec_fields)
                .map(|((name, t), (_, slot, _))| (name.to_string(), t.value(&slots[*slot])))
                .collect(),
        );
        match branch {
            Some(k) => (*topic, Avro::Union(*k, Box::new(record))),
            None => (*topic, record),
        }
    }
}

/// The type of each record of `event`.
fn event_types(event: &Event, pools: &[Vec<Ty>], scenario: &Scenario) -> Result<Vec<Ty>, String> {
    let mut slots = vec![Ty::Null; event.slot_count];
    for (name, slot) in &event.given {
        slots[*slot] = twin_type(name);
    }
    let picks: Vec<usize> = event.picks.clone();
    for (slot, g) in &event.lets {
        slots[*slot] = infer(g, &slots, &picks, pools, scenario);
    }
    let mut out = Vec::new();
    for spec in &event.records {
        out.push(record_type(spec, &mut slots, &picks, pools, scenario)?);
    }
    Ok(out)
}

fn record_type(
    spec: &RecordSpec,
    slots: &mut [Ty],
    picks: &[usize],
    pools: &[Vec<Ty>],
    scenario: &Scenario,
) -> Result<Ty, String> {
    let mut fields = Vec::new();
    for (name, slot, g) in &spec.fields {
        let t = infer(g, slots, picks, pools, scenario);
        check(&t).map_err(|m| format!("field {name}: {m}"))?;
        slots[*slot] = t.clone();
        fields.push((Rc::clone(name), t));
    }
    Ok(Ty::Record(fields))
}

fn check(t: &Ty) -> Result<(), String> {
    match t {
        Ty::Union(b) if b.iter().any(|x| matches!(x, Ty::Union(_))) => {
            Err("a union inside a union".into())
        }
        Ty::Union(b) => b.iter().try_for_each(check),
        Ty::Array(i) => check(i),
        Ty::Record(f) => f.iter().try_for_each(|(_, t)| check(t)),
        _ => Ok(()),
    }
}

/// The types of the twin's disruption values.
fn twin_type(name: &str) -> Ty {
    match name {
        "delay_minutes" | "vehicle_count" | "resolution_ms" => Ty::Long,
        "affected_stations" | "alternative_routes" => Ty::Array(Box::new(Ty::Str)),
        "position" => Ty::Pos,
        n if TWIN_VALUES.contains(&n) => Ty::Str,
        _ => Ty::Null,
    }
}

/// The type of what `g` makes.
fn infer(g: &Gen, slots: &[Ty], picks: &[usize], pools: &[Vec<Ty>], scenario: &Scenario) -> Ty {
    let go = |g: &Gen| infer(g, slots, picks, pools, scenario);
    let unify_all = |gens: &mut dyn Iterator<Item = Ty>| -> Ty {
        gens.reduce(|a, b| Ty::unify(&a, &b).unwrap_or(Ty::Str))
            .unwrap_or(Ty::Str)
    };
    match g {
        Gen::Const(v) => of_val(v),
        Gen::Seq { format, .. } | Gen::Int(_, _, format) if format.is_some() => Ty::Str,
        Gen::Seq { .. } | Gen::Int(..) => Ty::Long,
        Gen::Normal { int: true, .. } => Ty::Long,
        Gen::Uniform(..) | Gen::Normal { .. } | Gen::Exponential(..) => Ty::Double,
        Gen::Choice(options, _) => unify_all(&mut options.iter().map(go)),
        Gen::PoolItem(_, None) | Gen::Uuid | Gen::Place(_) | Gen::Concat(_) | Gen::Text(_) => {
            Ty::Str
        }
        Gen::PoolItem(p, Some(f)) => pools
            .get(*p)
            .and_then(|t| t.get(*f))
            .cloned()
            .unwrap_or(Ty::Str),
        Gen::Ref(target) => match target {
            Target::Slot(s, None) => slots[*s].clone(),
            Target::Slot(s, Some(part)) => match (&slots[*s], &**part) {
                (Ty::Pos, "lat" | "lon") => Ty::Double,
                (Ty::Record(fields), p) => fields
                    .iter()
                    .find(|(f, _)| &**f == p)
                    .map_or(Ty::Null, |(_, t)| t.clone()),
                _ => Ty::Null,
            },
            Target::PickId(_) => Ty::Str,
            Target::PickField(p, f) => picks
                .get(*p)
                .and_then(|pool| pools.get(*pool))
                .and_then(|t| t.get(*f))
                .cloned()
                .unwrap_or(Ty::Str),
            Target::PickPos(_, None) => Ty::Pos,
            Target::PickPos(_, Some(_)) => Ty::Double,
        },
        Gen::Time(style, ..) => match style {
            crate::generator::TimeStyle::EpochMs | crate::generator::TimeStyle::EpochS => Ty::Long,
            _ => Ty::Str,
        },
        Gen::Position(_) => Ty::Pos,
        Gen::List(item, ..) => Ty::Array(Box::new(go(item))),
        Gen::Fixed(items) => Ty::Array(Box::new(unify_all(&mut items.iter().map(go)))),
        Gen::Object(fields) => {
            Ty::Record(fields.iter().map(|(k, g)| (Rc::clone(k), go(g))).collect())
        }
        Gen::Counter { slot, add, .. } => {
            let initial = scenario
                .counters
                .get(*slot)
                .map_or(Ty::Long, |c| go(&c.initial));
            match (go(add), initial) {
                (Ty::Long, Ty::Long) => Ty::Long,
                _ => Ty::Double,
            }
        }
        Gen::Scale(inner, scale, d) => match go(inner) {
            Ty::Long if scale.fract() == 0.0 && d.is_none() => Ty::Long,
            _ => Ty::Double,
        },
        Gen::Mul(parts, d) => {
            if d.is_none() && parts.iter().all(|p| go(p) == Ty::Long) {
                Ty::Long
            } else {
                Ty::Double
            }
        }
        Gen::Nullable(inner, _) => match go(inner) {
            Ty::Null => Ty::Null,
            Ty::Union(mut b) => {
                if !b.contains(&Ty::Null) {
                    b.insert(0, Ty::Null);
                }
                Ty::Union(b)
            }
            t => Ty::Union(vec![Ty::Null, t]),
        },
        Gen::Pair(inner) => match go(inner) {
            Ty::Pos => Ty::Array(Box::new(Ty::Double)),
            t => t,
        },
    }
}

fn of_val(v: &Val) -> Ty {
    match v {
        Val::Null => Ty::Null,
        Val::Bool(_) => Ty::Bool,
        Val::Int(_) => Ty::Long,
        Val::Float(..) => Ty::Double,
        Val::Str(_) => Ty::Str,
        Val::Pos(..) => Ty::Pos,
        Val::List(items) => Ty::Array(Box::new(
            items
                .iter()
                .map(of_val)
                .reduce(|a, b| Ty::unify(&a, &b).unwrap_or(Ty::Str))
                .unwrap_or(Ty::Str),
        )),
        Val::Obj(fields) => Ty::Record(
            fields
                .iter()
                .map(|(k, v)| (Rc::clone(k), of_val(v)))
                .collect(),
        ),
    }
}
