//! A scenario running: the world it draws from (pools, counters, the city), one random
//! generator per stream, and the streams merged in event time.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use streamcity_network::Network;

use crate::avro::AvroPlan;
use crate::city::City;
use crate::generator::{Counter, Env, Pick, Pool, World};
use crate::scenario::{Scenario, Stream};
use crate::timing::Gaps;
use crate::value::Val;

/// Changes to a scenario's pace from the command line (the seeds' flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pace {
    /// Events a second, all streams together; each keeps its share.
    pub rate: Option<f64>,
    /// Gaps drawn uniformly between these (seconds), for every stream.
    pub uniform: Option<(f64, f64)>,
    /// Burst probability for every stream, and a burst's size.
    pub burst: Option<(f64, u32)>,
}

/// One record made.
#[derive(Debug, Clone, Copy)]
pub struct Made<'a> {
    /// Its topic (renamed as asked).
    pub topic: &'a Arc<str>,
    /// Its key (empty: none).
    pub key: &'a [u8],
    /// Event time, ms since the epoch.
    pub timestamp: i64,
    /// The value: JSON, or Avro when the engine writes Avro (with the Confluent
    /// header when its topic's schema has an id).
    pub value: &'a [u8],
    /// The Avro value, when the engine writes Avro, and its topic's schema.
    pub avro: Option<(&'a apache_avro::types::Value, &'a apache_avro::Schema)>,
}

struct Running {
    stream: Stream,
    rng: ChaCha8Rng,
    next_ms: f64,
    /// Each event's records' topics, renamed.
    topics: Vec<Vec<Arc<str>>>,
}

/// A scenario running.
pub struct Engine {
    streams: Vec<Running>,
    world: World,
    slots: Vec<Val>,
    picks: Vec<Pick>,
    value: Vec<u8>,
    key: String,
    local_ms: i64,
    avro: Option<Avro>,
}

/// How the engine writes Avro: the plan, and each topic's schema id in a registry.
struct Avro {
    plan: AvroPlan,
    ids: Vec<Option<u32>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl Engine {
    /// Starts `scenario` in `network`'s city at `start_ms`, seeded: the same seed,
    /// scenario, city and pace make the same records. `rename` maps topic names.
    pub fn new(
        scenario: &Scenario,
        network: &Network,
        seed: u64,
        start_ms: i64,
        pace: &Pace,
        rename: &HashMap<String, String>,
    ) -> Engine {
        let city = City::new(network);
        let local_ms = i64::from(city.utc_offset_min) * 60_000;
        let mut world = World {
            city,
            pools: Vec::new(),
            counters: scenario
                .counters
                .iter()
                .map(|c| Counter {
                    name: c.name.clone(),
                    initial: c.initial.clone(),
                    min: c.min,
                    max: c.max,
                    levels: HashMap::new(),
                })
                .collect(),
            seqs: scenario.seqs.clone(),
            times: Default::default(),
            key_buf: String::new(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for spec in &scenario.pools {
            let mut slots = vec![Val::Null; spec.slot_count];
            let mut values = Vec::with_capacity(spec.count);
            let mut movers = Vec::new();
            for _ in 0..spec.count {
                let mut env = Env {
                    rng: &mut rng,
                    now_ms: start_ms,
                    slots: &mut slots,
                    picks: &[],
                    world: &mut world,
                };
                let item: Vec<Val> = spec
                    .fields
                    .iter()
                    .map(|(_, slot, g)| {
                        let v = g.eval(&mut env);
                        env.slots[*slot] = v.clone();
                        v
                    })
                    .collect();
                values.push(item);
                if let Some((lo, hi)) = spec.moves {
                    let speed = if hi > lo {
                        rng.random_range(lo..=hi)
                    } else {
                        lo
                    };
                    movers.push((world.city.start_moving(speed, &mut rng), start_ms));
                }
            }
            world.pools.push(Pool {
                name: spec.name.clone(),
                ids: (0..spec.count as i64)
                    .map(|k| spec.id.apply(spec.first + k))
                    .collect(),
                fields: spec
                    .fields
                    .iter()
                    .map(|(n, ..)| Rc::from(n.as_str()))
                    .collect(),
                values,
                movers,
            });
        }
        let total_rate = scenario.events_per_second();
        let streams = scenario
            .streams
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let mut stream = s.clone();
                if let Some(rate) = pace.rate {
                    stream.timing.gaps = stream.timing.gaps.faster(rate / total_rate.max(1e-12));
                }
                if let Some((lo, hi)) = pace.uniform {
                    stream.timing.gaps = Gaps::Uniform(lo, hi);
                }
                if let Some((p, size)) = pace.burst {
                    stream.timing.burst_p = p;
                    stream.timing.burst_size = (size, size);
                }
                let topics = stream
                    .events
                    .iter()
                    .map(|e| {
                        e.records
                            .iter()
                            .map(|r| Arc::from(rename.get(&r.topic).unwrap_or(&r.topic).as_str()))
                            .collect()
                    })
                    .collect();
                let mut rng = ChaCha8Rng::seed_from_u64(
                    seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                // Streams start after their first gap, as the seeds' loops do not:
                // every stream's first event comes at the start.
                let _ = rng.random::<u64>();
                Running {
                    stream,
                    rng,
                    next_ms: start_ms as f64,
                    topics,
                }
            })
            .collect();
        let max_slots = scenario
            .streams
            .iter()
            .flat_map(|s| &s.events)
            .map(|e| e.slot_count)
            .max()
            .unwrap_or(0);
        Engine {
            streams,
            world,
            slots: vec![Val::Null; max_slots],
            picks: Vec::new(),
            value: Vec::with_capacity(1024),
            key: String::new(),
            local_ms,
            avro: None,
        }
    }

    /// Writes values in Avro from now on, to `plan`'s schemas: each value is the
    /// Confluent wire format (magic byte 0, the schema id, the datum) when its topic's
    /// schema has an id in `ids` (one per topic of the plan), the bare datum otherwise.
    pub fn write_avro(&mut self, plan: AvroPlan, ids: Vec<Option<u32>>) {
        self.avro = Some(Avro { plan, ids });
    }

    /// Event time of the next timed event, ms (`i64::MAX` when every stream comes
    /// from the twin).
    pub fn next_ms(&self) -> i64 {
        let t = self
            .streams
            .iter()
            .filter(|s| !s.stream.from_twin)
            .map(|s| s.next_ms)
            .fold(f64::INFINITY, f64::min);
        if t.is_finite() { t as i64 } else { i64::MAX }
    }

    /// The mean seconds between the twin's incidents its streams ask for (`every` of a
    /// stream `from = "twin"`), when the scenario has such a stream.
    pub fn twin_incident_every_s(&self) -> Option<f64> {
        self.streams
            .iter()
            .filter(|s| s.stream.from_twin)
            .map(|s| s.stream.timing.gaps.mean())
            .reduce(f64::min)
    }

    /// Makes the next moment's events (one, or a burst) of the timed stream due first,
    /// and hands each record to `made`; returns how many records were made.
    pub fn step(&mut self, made: &mut dyn FnMut(Made<'_>)) -> usize {
        let Some(k) = (0..self.streams.len())
            .filter(|k| !self.streams[*k].stream.from_twin)
            .min_by(|a, b| {
                self.streams[*a]
                    .next_ms
                    .total_cmp(&self.streams[*b].next_ms)
                    .then(a.cmp(b))
            })
        else {
            return 0;
        };
        let now_ms = self.streams[k].next_ms as i64;
        let count = {
            let running = &mut self.streams[k];
            running.stream.timing.count(&mut running.rng)
        };
        let mut records = 0;
        for _ in 0..count {
            let running = &mut self.streams[k];
            let cum = &running.stream.cumulative;
            let x = running.rng.random::<f64>() * cum[cum.len() - 1];
            let e = cum.partition_point(|c| *c <= x).min(cum.len() - 1);
            records += self.event(k, e, now_ms, &[], made);
        }
        let running = &mut self.streams[k];
        let gap = running
            .stream
            .timing
            .gap_ms(now_ms, self.local_ms, &mut running.rng);
        running.next_ms += gap.max(0.0);
        records
    }

    /// A disruption of the twin of `kind` (`delay`, `route_change`, `suspension`) at
    /// `at_ms`: the events answering it, in streams `from = "twin"`, are made with
    /// `given` as their `twin.` values. Returns how many records were made.
    pub fn on_twin(
        &mut self,
        kind: &str,
        at_ms: i64,
        given: &[(&str, Val)],
        made: &mut dyn FnMut(Made<'_>),
    ) -> usize {
        let mut records = 0;
        for k in 0..self.streams.len() {
            if !self.streams[k].stream.from_twin {
                continue;
            }
            for e in 0..self.streams[k].stream.events.len() {
                if self.streams[k].stream.events[e].on.as_deref() == Some(kind) {
                    records += self.event(k, e, at_ms, given, made);
                }
            }
        }
        records
    }

    fn event(
        &mut self,
        k: usize,
        e: usize,
        now_ms: i64,
        given: &[(&str, Val)],
        made: &mut dyn FnMut(Made<'_>),
    ) -> usize {
        let Engine {
            streams,
            world,
            slots,
            picks,
            value,
            key,
            avro,
            ..
        } = self;
        let running = &mut streams[k];
        let event = &running.stream.events[e];
        for (name, slot) in &event.given {
            slots[*slot] = given
                .iter()
                .find(|(n, _)| n == name)
                .map_or(Val::Null, |(_, v)| v.clone());
        }
        picks.clear();
        for &pool in &event.picks {
            let p = &mut world.pools[pool];
            let item = running.rng.random_range(0..p.ids.len());
            let pos = match p.movers.get_mut(item) {
                Some((mover, last_ms)) => {
                    let dt = (now_ms - *last_ms).max(0) as f64 / 1000.0;
                    *last_ms = now_ms;
                    Some(world.city.advance(mover, dt))
                }
                None => None,
            };
            picks.push((pool, item, pos));
        }
        let mut env = Env {
            rng: &mut running.rng,
            now_ms,
            slots: &mut slots[..],
            picks,
            world,
        };
        for (slot, g) in &event.lets {
            let v = g.eval(&mut env);
            env.slots[*slot] = v;
        }
        let mut records = 0;
        for (r, spec) in event.records.iter().enumerate() {
            if spec.probability < 1.0 && env.rng.random::<f64>() >= spec.probability {
                // Left out: what refers to its fields reads null, not an older event's.
                for (_, slot, _) in &spec.fields {
                    env.slots[*slot] = Val::Null;
                }
                continue;
            }
            for (_, slot, g) in &spec.fields {
                let v = g.eval(&mut env);
                env.slots[*slot] = v;
            }
            value.clear();
            let encoded = match &*avro {
                Some(avro) => {
                    let (t, v) = avro.plan.value(k, e, r, &spec.fields, env.slots);
                    if let Some(id) = avro.ids.get(t).copied().flatten() {
                        value.push(0);
                        value.extend_from_slice(&id.to_be_bytes());
                    }
                    let schema = &avro.plan.topics[t].schema;
                    match apache_avro::to_avro_datum(schema, v.clone()) {
                        Ok(datum) => value.extend_from_slice(&datum),
                        // The plan's types come from the generators: a value that does
                        // not fit is a fault here, said, never a stop.
                        Err(err) => avro_misfit(&spec.topic, &err.to_string()),
                    }
                    Some((v, schema))
                }
                None => {
                    value.push(b'{');
                    for (k, (_, slot, _)) in spec.fields.iter().enumerate() {
                        if k > 0 {
                            value.push(b',');
                        }
                        value.extend_from_slice(&spec.names_json[k]);
                        env.slots[*slot].write_json(value);
                    }
                    value.push(b'}');
                    None
                }
            };
            key.clear();
            if let Some(g) = &spec.key {
                g.eval(&mut env).write_text(key);
            }
            made(Made {
                topic: &running.topics[e][r],
                key: key.as_bytes(),
                timestamp: now_ms,
                value,
                avro: encoded.as_ref().map(|(v, schema)| (v, *schema)),
            });
            records += 1;
        }
        records
    }
}

/// A value that does not fit its schema (a fault of the schema's derivation): said on
/// standard error, the record goes out empty.
fn avro_misfit(topic: &str, err: &str) {
    eprintln!("Avro: a value for {topic} does not fit its schema: {err}");
}
