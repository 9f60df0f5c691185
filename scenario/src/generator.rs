//! Field generators: what a scenario file writes for a value (`{ uniform = [1, 5] }`,
//! `{ ref = "store.id" }`, …), parsed into a tree once and evaluated for every event.

use std::collections::HashMap;
use std::rc::Rc;

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use toml::Value as Toml;

use crate::ScenarioError;
use crate::city::{City, Mover, PlaceKind};
use crate::value::Val;

/// A parsed generator.
#[derive(Debug, Clone)]
pub enum Gen {
    /// Always this value.
    Const(Val),
    /// `start`, `start + step`, … (one sequence per generator, across the run).
    Seq {
        /// Its counter in the world.
        slot: usize,
        /// Its step.
        step: i64,
        /// How it is written, when as text.
        format: Option<Format>,
    },
    /// Uniform in `[lo, hi)`.
    Uniform(f64, f64, Option<u8>),
    /// Uniform integer in `[lo, hi]`.
    Int(i64, i64, Option<Format>),
    /// Normal, clamped.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
        /// Clamp below.
        min: f64,
        /// Clamp above.
        max: f64,
        /// Decimal places.
        decimals: Option<u8>,
        /// Whole numbers.
        int: bool,
    },
    /// Exponential with this mean.
    Exponential(f64, Option<u8>),
    /// One of the options, uniformly or by weight (cumulative).
    Choice(Vec<Gen>, Option<Vec<f64>>),
    /// A random item of a pool: its id, or one of its fields.
    PoolItem(usize, Option<usize>),
    /// A value named earlier in the event.
    Ref(Target),
    /// The event's time (or the moment `at` gives, ms), shifted by `plus_s` seconds,
    /// in a style.
    Time(TimeStyle, Option<Box<Gen>>, Option<Box<Gen>>),
    /// A random UUID (version 4).
    Uuid,
    /// A random position in the city.
    Position(PlaceKind),
    /// A random place's name in the city.
    Place(PlaceKind),
    /// A list of `len` values; with `unique`, without repeats (as far as the values
    /// allow).
    List(Box<Gen>, usize, usize, bool),
    /// A list of these values, each generated.
    Fixed(Vec<Gen>),
    /// An object.
    Object(Vec<(Rc<str>, Gen)>),
    /// Parts written one after the other as a string.
    Concat(Vec<Gen>),
    /// A counter per key: adds `add` and gives the new level.
    Counter {
        /// The counter.
        slot: usize,
        /// The key's parts.
        key: Vec<Gen>,
        /// What is added.
        add: Box<Gen>,
    },
    /// `inner × scale`.
    Scale(Box<Gen>, f64, Option<u8>),
    /// `inner`, or null with probability `p`.
    Nullable(Box<Gen>, f64),
    /// `inner` as a string.
    Text(Box<Gen>),
    /// The product of the values.
    Mul(Vec<Gen>, Option<u8>),
    /// A position written as `[lat, lon]`.
    Pair(Box<Gen>),
}

/// A number written into a string: `PROD-{:04}` writes 42 as `PROD-0042`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    before: String,
    width: usize,
    after: String,
}

impl Format {
    /// Parses `…{}…` or `…{:0N}…`.
    pub fn parse(s: &str) -> Result<Format, String> {
        let open = s
            .find('{')
            .ok_or_else(|| format!("format {s:?} has no {{}}"))?;
        let close = s[open..]
            .find('}')
            .map(|c| c + open)
            .ok_or_else(|| format!("format {s:?} has no closing }}"))?;
        let spec = &s[open + 1..close];
        let width = match spec {
            "" => 0,
            _ => spec
                .strip_prefix(":0")
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| *w <= 20)
                .ok_or_else(|| {
                    format!("format {s:?}: write {{}} or {{:0N}} (N digits, zero-padded)")
                })?,
        };
        Ok(Format {
            before: s[..open].to_owned(),
            width,
            after: s[close + 1..].to_owned(),
        })
    }

    /// `n` written in this format.
    pub fn apply(&self, n: i64) -> Rc<str> {
        let mut s = String::with_capacity(self.before.len() + self.width + self.after.len() + 4);
        s.push_str(&self.before);
        let digits = itoa::Buffer::new().format(n.unsigned_abs()).len();
        if n < 0 {
            s.push('-');
        }
        for _ in digits..self.width {
            s.push('0');
        }
        s.push_str(itoa::Buffer::new().format(n.unsigned_abs()));
        s.push_str(&self.after);
        Rc::from(s)
    }
}

/// How a moment is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeStyle {
    /// `2025-12-25T10:30:00` (local time of the city, no zone, as the CivicSense seed).
    Iso,
    /// `2025-12-25T10:30:00Z` (UTC).
    IsoZ,
    /// `2025-12-25T10:30:00.123Z` (UTC, milliseconds).
    IsoMsZ,
    /// `2024-01-15T10:30:00.123456` (local, microseconds: Python's `isoformat()`).
    IsoUs,
    /// Milliseconds since the epoch.
    EpochMs,
    /// Seconds since the epoch.
    EpochS,
}

impl TimeStyle {
    fn parse(s: &str) -> Option<TimeStyle> {
        Some(match s {
            "iso" => TimeStyle::Iso,
            "iso_z" => TimeStyle::IsoZ,
            "iso_ms_z" => TimeStyle::IsoMsZ,
            "iso_us" => TimeStyle::IsoUs,
            "epoch_ms" => TimeStyle::EpochMs,
            "epoch_s" => TimeStyle::EpochS,
            _ => return None,
        })
    }
}

/// What a reference names.
#[derive(Debug, Clone)]
pub enum Target {
    /// A value of the event (a `let`, a field already generated, a given value).
    Slot(usize, Option<Rc<str>>),
    /// A picked item's id.
    PickId(usize),
    /// A picked item's field.
    PickField(usize, usize),
    /// A picked item's position (`.position`, `.lat`, `.lon`).
    PickPos(usize, Option<bool>),
}

/// A pool of items (users, products, stores, drivers): ids, fixed fields, and for
/// moving ones a position on the streets.
#[derive(Debug)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Item ids.
    pub ids: Vec<Rc<str>>,
    /// Field names.
    pub fields: Vec<Rc<str>>,
    /// Each item's fields.
    pub values: Vec<Vec<Val>>,
    /// Each item's movement and when it was last placed, for moving pools.
    pub movers: Vec<(Mover, i64)>,
}

/// Counters per key, bounded.
#[derive(Debug)]
pub struct Counter {
    /// Its name.
    pub name: String,
    /// The level of a key seen first.
    pub initial: Gen,
    /// Lowest level.
    pub min: f64,
    /// Highest level.
    pub max: f64,
    /// Levels by key.
    pub levels: HashMap<String, f64>,
}

/// Most keys a counter keeps: a new key past it forgets them all (each starts again
/// from its initial level when next seen), so memory stays bounded whatever the keys.
pub const COUNTER_KEYS_MAX: usize = 1_000_000;

/// What generators draw from and change.
#[derive(Debug)]
pub struct World {
    /// The city.
    pub city: City,
    /// Pools.
    pub pools: Vec<Pool>,
    /// Counters.
    pub counters: Vec<Counter>,
    /// Sequences' next values.
    pub seqs: Vec<i64>,
    /// The last moment written in each style, and how: events of one second share it.
    pub times: [(i64, Option<Rc<str>>); 6],
    /// A counter key being built (kept to spare an allocation per event).
    pub key_buf: String,
}

/// An item picked for an event: its pool, its index, and for a moving pool where it
/// is now.
pub type Pick = (usize, usize, Option<(f64, f64)>);

/// The state of one event while it is generated.
#[derive(Debug)]
pub struct Env<'a> {
    /// Random numbers.
    pub rng: &'a mut ChaCha8Rng,
    /// The event's time, ms.
    pub now_ms: i64,
    /// Its values by slot.
    pub slots: &'a mut [Val],
    /// Its picked items: pool, item, and for moving pools the position now.
    pub picks: &'a [Pick],
    /// The world.
    pub world: &'a mut World,
}

impl Gen {
    /// The value for this event.
    pub fn eval(&self, env: &mut Env<'_>) -> Val {
        match self {
            Gen::Const(v) => v.clone(),
            Gen::Seq { slot, step, format } => {
                let n = env.world.seqs[*slot];
                env.world.seqs[*slot] = n.wrapping_add(*step);
                match format {
                    Some(f) => Val::Str(f.apply(n)),
                    None => Val::Int(n),
                }
            }
            Gen::Uniform(lo, hi, d) => Val::float(lo + (hi - lo) * env.rng.random::<f64>(), *d),
            Gen::Int(lo, hi, format) => {
                let n = env.rng.random_range(*lo..=*hi);
                match format {
                    Some(f) => Val::Str(f.apply(n)),
                    None => Val::Int(n),
                }
            }
            Gen::Normal {
                mean,
                sd,
                min,
                max,
                decimals,
                int,
            } => {
                // Box–Muller.
                let u1: f64 = 1.0 - env.rng.random::<f64>();
                let u2: f64 = env.rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let x = (mean + sd * z).clamp(*min, *max);
                if *int {
                    Val::Int(x.round() as i64)
                } else {
                    Val::float(x, *decimals)
                }
            }
            Gen::Exponential(mean, d) => {
                let u: f64 = 1.0 - env.rng.random::<f64>();
                Val::float(-u.ln() * mean, *d)
            }
            Gen::Choice(options, cumulative) => {
                let k = match cumulative {
                    None => env.rng.random_range(0..options.len()),
                    Some(cum) => {
                        let x = env.rng.random::<f64>() * cum[cum.len() - 1];
                        cum.partition_point(|c| *c <= x).min(options.len() - 1)
                    }
                };
                options[k].eval(env)
            }
            Gen::PoolItem(pool, field) => {
                let p = &env.world.pools[*pool];
                let k = env.rng.random_range(0..p.ids.len());
                match field {
                    None => Val::Str(Rc::clone(&p.ids[k])),
                    Some(f) => p.values[k][*f].clone(),
                }
            }
            Gen::Ref(target) => match target {
                Target::Slot(s, None) => env.slots[*s].clone(),
                Target::Slot(s, Some(part)) => env.slots[*s].part(part).unwrap_or(Val::Null),
                Target::PickId(p) => {
                    let (pool, item, _) = env.picks[*p];
                    Val::Str(Rc::clone(&env.world.pools[pool].ids[item]))
                }
                Target::PickField(p, f) => {
                    let (pool, item, _) = env.picks[*p];
                    env.world.pools[pool].values[item][*f].clone()
                }
                Target::PickPos(p, which) => {
                    let (lat, lon) = env.picks[*p].2.unwrap_or_default();
                    match which {
                        None => Val::Pos(lat, lon),
                        Some(true) => Val::float(lat, Some(6)),
                        Some(false) => Val::float(lon, Some(6)),
                    }
                }
            },
            Gen::Time(style, plus, at) => {
                let plus_ms = plus
                    .as_ref()
                    .and_then(|g| g.eval(env).as_f64())
                    .map_or(0, |s| (s * 1000.0) as i64);
                let base = at
                    .as_ref()
                    .and_then(|g| g.eval(env).as_i64())
                    .unwrap_or(env.now_ms);
                let local = i64::from(env.world.city.utc_offset_min) * 60_000;
                let ms = base.saturating_add(plus_ms);
                let cached = &mut env.world.times[*style as usize];
                let same = match style {
                    TimeStyle::Iso | TimeStyle::IsoZ => {
                        cached.0.div_euclid(1000) == ms.div_euclid(1000)
                    }
                    _ => cached.0 == ms,
                };
                match (&cached.1, same) {
                    (Some(text), true) => Val::Str(Rc::clone(text)),
                    _ => {
                        let v = time_val(*style, ms, local);
                        if let Val::Str(text) = &v {
                            *cached = (ms, Some(Rc::clone(text)));
                        }
                        v
                    }
                }
            }
            Gen::Uuid => {
                let (a, b): (u64, u64) = (env.rng.random(), env.rng.random());
                let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
                let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
                let text = uuid_text(a, b);
                Val::Str(Rc::from(std::str::from_utf8(&text).unwrap_or_default()))
            }
            Gen::Position(kind) => {
                let (lat, lon) = env.world.city.position(*kind, env.rng);
                Val::Pos(lat, lon)
            }
            Gen::Place(kind) => Val::Str(env.world.city.name(*kind, env.rng)),
            Gen::List(item, lo, hi, unique) => {
                let n = env.rng.random_range(*lo..=*hi);
                let mut items: Vec<Val> = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut v = item.eval(env);
                    // A few more draws for a value not in the list yet.
                    for _ in 0..8 {
                        if !*unique || !items.contains(&v) {
                            break;
                        }
                        v = item.eval(env);
                    }
                    if !*unique || !items.contains(&v) {
                        items.push(v);
                    }
                }
                Val::List(items)
            }
            Gen::Fixed(items) => Val::List(items.iter().map(|g| g.eval(env)).collect()),
            Gen::Object(fields) => Val::Obj(
                fields
                    .iter()
                    .map(|(k, g)| (Rc::clone(k), g.eval(env)))
                    .collect(),
            ),
            Gen::Concat(parts) => {
                let mut s = String::new();
                for p in parts {
                    p.eval(env).write_text(&mut s);
                }
                Val::Str(Rc::from(s))
            }
            Gen::Counter { slot, key, add } => {
                let mut k = std::mem::take(&mut env.world.key_buf);
                k.clear();
                for (n, part) in key.iter().enumerate() {
                    if n > 0 {
                        k.push('\u{1f}');
                    }
                    part.eval(env).write_text(&mut k);
                }
                let delta = add.eval(env).as_f64().unwrap_or(0.0);
                let known = env.world.counters[*slot].levels.get(k.as_str()).copied();
                let level = match known {
                    Some(l) => l,
                    None => {
                        let initial = env.world.counters[*slot].initial.clone();
                        initial.eval(env).as_f64().unwrap_or(0.0)
                    }
                };
                let c = &mut env.world.counters[*slot];
                let level = (level + delta).clamp(c.min, c.max);
                match c.levels.get_mut(k.as_str()) {
                    Some(l) => *l = level,
                    None => {
                        if c.levels.len() >= COUNTER_KEYS_MAX {
                            c.levels.clear();
                        }
                        c.levels.insert(k.clone(), level);
                    }
                }
                env.world.key_buf = k;
                if level.fract() == 0.0 {
                    Val::Int(level as i64)
                } else {
                    Val::float(level, None)
                }
            }
            Gen::Scale(inner, scale, d) => match inner.eval(env) {
                Val::Int(i) if scale.fract() == 0.0 && d.is_none() => {
                    Val::Int(i.saturating_mul(*scale as i64))
                }
                v => v.as_f64().map_or(v, |x| Val::float(x * scale, *d)),
            },
            Gen::Nullable(inner, p) => {
                if env.rng.random::<f64>() < *p {
                    Val::Null
                } else {
                    inner.eval(env)
                }
            }
            Gen::Mul(parts, d) => {
                let mut product = 1.0;
                let mut whole = d.is_none();
                for p in parts {
                    let v = p.eval(env);
                    whole &= matches!(v, Val::Int(_));
                    product *= v.as_f64().unwrap_or(f64::NAN);
                }
                if whole && product.abs() < 9e15 {
                    Val::Int(product as i64)
                } else {
                    Val::float(product, *d)
                }
            }
            Gen::Pair(inner) => match inner.eval(env) {
                Val::Pos(lat, lon) => {
                    Val::List(vec![Val::float(lat, Some(6)), Val::float(lon, Some(6))])
                }
                other => other,
            },
            Gen::Text(inner) => {
                let mut s = String::new();
                inner.eval(env).write_text(&mut s);
                Val::Str(Rc::from(s))
            }
        }
    }
}

/// The 36 characters of a UUID from its 128 bits.
fn uuid_text(a: u64, b: u64) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let bits = (u128::from(a) << 64) | u128::from(b);
    let mut k = 0;
    for (n, slot) in out.iter_mut().enumerate() {
        if matches!(n, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        *slot = HEX[((bits >> (124 - 4 * k)) & 0xf) as usize];
        k += 1;
    }
    out
}

/// `ms` written in `style`; `local_ms` is the city's offset from UTC.
pub fn time_val(style: TimeStyle, ms: i64, local_ms: i64) -> Val {
    let text = |ms: i64, frac: u32, zone: bool| {
        let mut buf = [0u8; 32];
        let n = write_iso(&mut buf, ms, frac, zone);
        Val::Str(Rc::from(std::str::from_utf8(&buf[..n]).unwrap_or_default()))
    };
    match style {
        TimeStyle::Iso => text(ms + local_ms, 0, false),
        TimeStyle::IsoZ => text(ms, 0, true),
        TimeStyle::IsoMsZ => text(ms, 3, true),
        TimeStyle::IsoUs => text(ms + local_ms, 6, false),
        TimeStyle::EpochMs => Val::Int(ms),
        TimeStyle::EpochS => Val::Int(ms.div_euclid(1000)),
    }
}

/// Writes `2025-12-25T10:30:00[.123|.123000][Z]` into `buf`; returns its length.
fn write_iso(buf: &mut [u8; 32], ms: i64, frac: u32, zone: bool) -> usize {
    let secs = ms.div_euclid(1000);
    let (days, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = streamcity_network::Date::from_days(days).ymd();
    let mut n = 0;
    let mut put = |value: u64, width: u32| {
        for k in (0..width).rev() {
            buf[n] = b'0' + ((value / 10u64.pow(k)) % 10) as u8;
            n += 1;
        }
    };
    put(u64::from(y), 4);
    put(u64::from(m), 2);
    put(u64::from(d), 2);
    put((s / 3600) as u64, 2);
    put((s / 60 % 60) as u64, 2);
    put((s % 60) as u64, 2);
    let sub = ms.rem_euclid(1000) as u64;
    match frac {
        3 => put(sub, 3),
        6 => put(sub * 1000, 6),
        _ => {}
    }
    // Separators go in after the digits, moving them into place.
    let digits = n;
    let mut out = [0u8; 32];
    let mut o = 0;
    for (k, &c) in buf[..digits].iter().enumerate() {
        match k {
            4 | 6 => {
                out[o] = b'-';
                o += 1;
            }
            8 => {
                out[o] = b'T';
                o += 1;
            }
            10 | 12 => {
                out[o] = b':';
                o += 1;
            }
            14 => {
                out[o] = b'.';
                o += 1;
            }
            _ => {}
        }
        out[o] = c;
        o += 1;
    }
    if zone {
        out[o] = b'Z';
        o += 1;
    }
    *buf = out;
    o
}

/// What a generator may name while it is parsed.
#[derive(Debug, Default)]
pub struct Names {
    /// Pools: name and field names.
    pub pools: Vec<(String, Vec<String>, bool)>,
    /// Counters' names.
    pub counters: Vec<String>,
    /// Sequences' starts (one per `seq` generator).
    pub seqs: Vec<i64>,
    /// The event's values so far: name and slot.
    pub slots: Vec<(String, usize)>,
    /// Slots in use in the event.
    pub slot_count: usize,
    /// The event's picks: name and pool.
    pub picks: Vec<(String, usize)>,
}

impl Names {
    /// Gives `name` a new slot in the event (a later value of that name hides the
    /// earlier one from later references).
    pub fn bind(&mut self, name: &str) -> usize {
        let slot = self.slot_count;
        self.slot_count += 1;
        self.slots.push((name.to_owned(), slot));
        slot
    }

    fn resolve(&self, path: &str) -> Result<Target, String> {
        if let Some((_, slot)) = self.slots.iter().rev().find(|(n, _)| n == path) {
            return Ok(Target::Slot(*slot, None));
        }
        let (head, part) = path.split_once('.').unwrap_or((path, ""));
        if let Some(p) = self.picks.iter().rposition(|(n, _)| n == head) {
            let (pool_name, fields, moving) = &self.pools[self.picks[p].1];
            return match part {
                "id" | "" => Ok(Target::PickId(p)),
                "position" | "lat" | "lon" if *moving => Ok(Target::PickPos(
                    p,
                    match part {
                        "lat" => Some(true),
                        "lon" => Some(false),
                        _ => None,
                    },
                )),
                f => fields
                    .iter()
                    .position(|x| x == f)
                    .map(|f| Target::PickField(p, f))
                    .ok_or_else(|| {
                        format!(
                            "`{path}`: the pool {pool_name} has no field {f} (it has id{}{}{})",
                            if *moving { ", position, lat, lon" } else { "" },
                            if fields.is_empty() { "" } else { ", " },
                            fields.join(", ")
                        )
                    }),
            };
        }
        // `twin.position.lat`: the longest name before a dot, and the part after it.
        let mut cut = path.len();
        while let Some(dot) = path[..cut].rfind('.') {
            let (name, part) = (&path[..dot], &path[dot + 1..]);
            if let Some((_, slot)) = self.slots.iter().rev().find(|(n, _)| n == name) {
                return Ok(Target::Slot(*slot, Some(Rc::from(part))));
            }
            cut = dot;
        }
        let mut known: Vec<&str> = self.slots.iter().map(|(n, _)| n.as_str()).collect();
        known.extend(self.picks.iter().map(|(n, _)| n.as_str()));
        Err(format!(
            "`{path}` names nothing before it in this event (known: {})",
            if known.is_empty() {
                "nothing".to_owned()
            } else {
                known.join(", ")
            }
        ))
    }
}

const KINDS: &str = "const, seq, uniform, int, normal, exponential, choice, pool, ref, timestamp, uuid, position, place, list, object, concat, mul, counter";

/// Parses the generator at `path` of the scenario file.
pub fn parse(v: &Toml, path: &str, names: &mut Names) -> Result<Gen, ScenarioError> {
    let err = |m: String| ScenarioError::at(path, m);
    let table = match v {
        Toml::Table(t) => t,
        Toml::Array(items) => {
            // A literal list (each item a generator of its own).
            let gens = items
                .iter()
                .enumerate()
                .map(|(k, i)| parse(i, &format!("{path}[{k}]"), names))
                .collect::<Result<Vec<_>, _>>()?;
            if gens.iter().all(|g| matches!(g, Gen::Const(_))) {
                return Ok(Gen::Const(Val::List(
                    gens.into_iter()
                        .map(|g| match g {
                            Gen::Const(v) => v,
                            _ => Val::Null,
                        })
                        .collect(),
                )));
            }
            return Ok(Gen::Fixed(gens));
        }
        other => return literal(other).map(Gen::Const).map_err(err),
    };
    let f64_of = |key: &str| -> Result<Option<f64>, ScenarioError> {
        match table.get(key) {
            None => Ok(None),
            Some(Toml::Integer(i)) => Ok(Some(*i as f64)),
            Some(Toml::Float(f)) if f.is_finite() => Ok(Some(*f)),
            Some(other) => Err(err(format!("`{key}` must be a number, not {other}"))),
        }
    };
    let decimals = match table.get("decimals") {
        None => None,
        Some(Toml::Integer(d)) if (0..=12).contains(d) => Some(*d as u8),
        Some(other) => return Err(err(format!("`decimals` must be 0 to 12, not {other}"))),
    };
    let format = match table.get("format") {
        None => None,
        Some(Toml::String(s)) => Some(Format::parse(s).map_err(err)?),
        Some(other) => return Err(err(format!("`format` must be a string, not {other}"))),
    };
    let pair = |key: &str, v: &Toml| -> Result<(f64, f64), ScenarioError> {
        let nums: Option<Vec<f64>> = v.as_array().map(|a| {
            a.iter()
                .filter_map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
                .collect()
        });
        match nums.as_deref() {
            Some([a, b]) if a <= b && a.is_finite() && b.is_finite() => Ok((*a, *b)),
            _ => Err(err(format!(
                "`{key}` must be two numbers [low, high] with low ≤ high, not {v}"
            ))),
        }
    };
    let kinds: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !matches!(
                *k,
                "decimals"
                    | "format"
                    | "weights"
                    | "min"
                    | "max"
                    | "plus_s"
                    | "at"
                    | "len"
                    | "key"
                    | "add"
                    | "scale"
                    | "null_p"
                    | "step"
                    | "field"
                    | "as"
                    | "text"
                    | "unique"
            )
        })
        .collect();
    let [kind] = kinds[..] else {
        return Err(err(if kinds.is_empty() {
            format!("a generator needs one of: {KINDS}")
        } else {
            format!(
                "one generator per value, found {} (write an object as {{ object = {{ … }} }})",
                kinds.join(", ")
            )
        }));
    };
    let arg = &table[kind];
    let sub = |name: &str| format!("{path}.{name}");
    let mut g = match kind {
        "const" => Gen::Const(literal(arg).map_err(err)?),
        "seq" => {
            let start = arg
                .as_integer()
                .ok_or_else(|| err(format!("`seq` is the first number, an integer, not {arg}")))?;
            let step = match table.get("step") {
                None => 1,
                Some(s) => s
                    .as_integer()
                    .ok_or_else(|| err("`step` must be an integer".into()))?,
            };
            names.seqs.push(start);
            Gen::Seq {
                slot: names.seqs.len() - 1,
                step,
                format: format.clone(),
            }
        }
        "uniform" => {
            let (lo, hi) = pair("uniform", arg)?;
            Gen::Uniform(lo, hi, decimals)
        }
        "int" => {
            let (lo, hi) = pair("int", arg)?;
            if lo.fract() != 0.0 || hi.fract() != 0.0 {
                return Err(err("`int` bounds must be whole numbers".into()));
            }
            Gen::Int(lo as i64, hi as i64, format.clone())
        }
        "normal" => {
            let (mean, sd) = match arg.as_array().map(Vec::as_slice) {
                Some([m, s]) => (
                    m.as_float().or_else(|| m.as_integer().map(|i| i as f64)),
                    s.as_float().or_else(|| s.as_integer().map(|i| i as f64)),
                ),
                _ => (None, None),
            };
            let (Some(mean), Some(sd)) = (mean, sd) else {
                return Err(err(format!(
                    "`normal` is [mean, standard deviation], not {arg}"
                )));
            };
            if !(sd >= 0.0 && sd.is_finite() && mean.is_finite()) {
                return Err(err("`normal`: the standard deviation must be ≥ 0".into()));
            }
            Gen::Normal {
                mean,
                sd,
                min: f64_of("min")?.unwrap_or(f64::MIN),
                max: f64_of("max")?.unwrap_or(f64::MAX),
                decimals,
                int: decimals == Some(0),
            }
        }
        "exponential" => {
            let mean = arg
                .as_float()
                .or_else(|| arg.as_integer().map(|i| i as f64))
                .filter(|m| *m > 0.0 && m.is_finite())
                .ok_or_else(|| err(format!("`exponential` is its mean, > 0, not {arg}")))?;
            Gen::Exponential(mean, decimals)
        }
        "choice" => {
            let options = arg
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| err("`choice` is a non-empty list of options".into()))?;
            let options = options
                .iter()
                .enumerate()
                .map(|(k, o)| parse(o, &format!("{path}.choice[{k}]"), names))
                .collect::<Result<Vec<_>, _>>()?;
            let cumulative = match table.get("weights") {
                None => None,
                Some(w) => Some(cumulative(w, options.len()).map_err(err)?),
            };
            Gen::Choice(options, cumulative)
        }
        "pool" => {
            let name = arg
                .as_str()
                .ok_or_else(|| err("`pool` names a pool".into()))?;
            let p = names
                .pools
                .iter()
                .position(|(n, ..)| n == name)
                .ok_or_else(|| err(format!("no pool named {name}")))?;
            let field = match table.get("field").and_then(Toml::as_str) {
                None => None,
                Some(f) => Some(
                    names.pools[p]
                        .1
                        .iter()
                        .position(|x| x == f)
                        .ok_or_else(|| err(format!("the pool {name} has no field {f}")))?,
                ),
            };
            Gen::PoolItem(p, field)
        }
        "ref" => {
            let name = arg
                .as_str()
                .ok_or_else(|| err("`ref` names a value".into()))?;
            Gen::Ref(names.resolve(name).map_err(err)?)
        }
        "timestamp" => {
            let style = arg.as_str().and_then(TimeStyle::parse).ok_or_else(|| {
                err(format!(
                    "`timestamp` is one of iso, iso_z, iso_ms_z, iso_us, epoch_ms, epoch_s, not {arg}"
                ))
            })?;
            let plus = match table.get("plus_s") {
                None => None,
                Some(p) => Some(Box::new(parse(p, &sub("plus_s"), names)?)),
            };
            let at = match table.get("at") {
                None => None,
                Some(p) => Some(Box::new(parse(p, &sub("at"), names)?)),
            };
            Gen::Time(style, plus, at)
        }
        "uuid" => Gen::Uuid,
        "position" | "place" => {
            let kind_of = arg.as_str().and_then(PlaceKind::parse).ok_or_else(|| {
                err(format!(
                    "`{kind}` is one of stop, street, district, line, not {arg}"
                ))
            })?;
            if kind == "position" {
                Gen::Position(kind_of)
            } else {
                Gen::Place(kind_of)
            }
        }
        "list" => {
            let item = parse(arg, &sub("list"), names)?;
            let (lo, hi) = match table.get("len") {
                None => (1.0, 1.0),
                Some(Toml::Integer(n)) => (*n as f64, *n as f64),
                Some(v) => pair("len", v)?,
            };
            if lo < 0.0 || hi > 10_000.0 {
                return Err(err("`len` must be within 0 to 10,000".into()));
            }
            Gen::List(
                Box::new(item),
                lo as usize,
                hi as usize,
                table.get("unique").and_then(Toml::as_bool) == Some(true),
            )
        }
        "object" => {
            let fields = arg
                .as_table()
                .ok_or_else(|| err("`object` is a table of fields".into()))?;
            Gen::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((Rc::from(k.as_str()), parse(v, &sub(k), names)?)))
                    .collect::<Result<Vec<_>, ScenarioError>>()?,
            )
        }
        "mul" => {
            let parts = arg
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| err("`mul` is a list of numbers to multiply".into()))?;
            Gen::Mul(
                parts
                    .iter()
                    .enumerate()
                    .map(|(k, p)| parse(p, &format!("{path}.mul[{k}]"), names))
                    .collect::<Result<Vec<_>, _>>()?,
                decimals,
            )
        }
        "concat" => {
            let parts = arg
                .as_array()
                .ok_or_else(|| err("`concat` is a list of parts".into()))?;
            Gen::Concat(
                parts
                    .iter()
                    .enumerate()
                    .map(|(k, p)| parse(p, &format!("{path}.concat[{k}]"), names))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        "counter" => {
            let name = arg
                .as_str()
                .ok_or_else(|| err("`counter` names a counter".into()))?;
            let slot = names
                .counters
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| {
                    err(format!(
                        "no counter named {name} (declare it under [counters])"
                    ))
                })?;
            let key = match table.get("key") {
                Some(Toml::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(k, p)| parse(p, &format!("{path}.key[{k}]"), names))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(one) => vec![parse(one, &sub("key"), names)?],
                None => Vec::new(),
            };
            let add = match table.get("add") {
                Some(a) => parse(a, &sub("add"), names)?,
                None => Gen::Const(Val::Int(0)),
            };
            Gen::Counter {
                slot,
                key,
                add: Box::new(add),
            }
        }
        other => {
            return Err(err(format!(
                "unknown generator `{other}` (one of: {KINDS})"
            )));
        }
    };
    if let Some(scale) = f64_of("scale")? {
        g = Gen::Scale(Box::new(g), scale, decimals);
    }
    if let Some(p) = f64_of("null_p")? {
        if !(0.0..=1.0).contains(&p) {
            return Err(err("`null_p` is a probability, 0 to 1".into()));
        }
        g = Gen::Nullable(Box::new(g), p);
    }
    match table.get("as").map(|a| (a, a.as_str())) {
        None | Some((_, Some("object"))) => {}
        Some((_, Some("pair"))) => g = Gen::Pair(Box::new(g)),
        Some((a, _)) => {
            return Err(err(format!(
                "`as` is object or pair (for positions), not {a}"
            )));
        }
    }
    if table.get("text").and_then(Toml::as_bool) == Some(true) {
        g = Gen::Text(Box::new(g));
    }
    Ok(g)
}

/// A literal value of the file.
pub fn literal(v: &Toml) -> Result<Val, String> {
    Ok(match v {
        Toml::String(s) => Val::str(s),
        Toml::Integer(i) => Val::Int(*i),
        Toml::Float(f) => Val::Float(*f, None),
        Toml::Boolean(b) => Val::Bool(*b),
        Toml::Array(a) => Val::List(a.iter().map(literal).collect::<Result<_, _>>()?),
        Toml::Table(t) => Val::Obj(
            t.iter()
                .map(|(k, v)| Ok((Rc::from(k.as_str()), literal(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Toml::Datetime(d) => Val::str(&d.to_string()),
    })
}

/// Running totals of `weights`, which must be `n` non-negative numbers, not all 0.
pub fn cumulative(w: &Toml, n: usize) -> Result<Vec<f64>, String> {
    let weights: Vec<f64> = w
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
                .collect()
        })
        .unwrap_or_default();
    if weights.len() != n || weights.iter().any(|x| !(*x >= 0.0 && x.is_finite())) {
        return Err(format!(
            "`weights` must be {n} numbers ≥ 0, one per option, not {w}"
        ));
    }
    let mut acc = 0.0;
    let cum: Vec<f64> = weights
        .iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect();
    if acc <= 0.0 {
        return Err("`weights` cannot all be 0".into());
    }
    Ok(cum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_written_as_iso_8601_and_epoch() {
        let ms = 1_766_658_600_123; // 2025-12-25T10:30:00.123Z
        let text = |style| match time_val(style, ms, 0) {
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(text(TimeStyle::Iso), "2025-12-25T10:30:00");
        assert_eq!(text(TimeStyle::IsoZ), "2025-12-25T10:30:00Z");
        assert_eq!(text(TimeStyle::IsoMsZ), "2025-12-25T10:30:00.123Z");
        assert_eq!(text(TimeStyle::IsoUs), "2025-12-25T10:30:00.123000");
        assert_eq!(text(TimeStyle::EpochMs), "1766658600123");
        assert_eq!(text(TimeStyle::EpochS), "1766658600");
        // Local time: ten hours ahead.
        assert_eq!(
            time_val(TimeStyle::Iso, ms, 36_000_000),
            Val::str("2025-12-25T20:30:00")
        );
        // Every second of a leap day and of the years around it agrees with the
        // calendar's own writing.
        for day in [-1i64, 0, 11_016, 19_782, 20_513] {
            for s in [0i64, 59, 3_599, 86_399] {
                let ms = (day * 86_400 + s) * 1000;
                let want = streamcity_network::calendar::iso8601(ms);
                assert_eq!(time_val(TimeStyle::IsoZ, ms, 0), Val::str(&want));
            }
        }
    }

    #[test]
    fn uuids_are_version_4_and_formats_pad() {
        let text = uuid_text(u64::MAX, 0);
        let text = std::str::from_utf8(&text).unwrap();
        assert_eq!(text, "ffffffff-ffff-ffff-0000-000000000000");
        assert_eq!(
            &*Format::parse("PROD-{:04}").unwrap().apply(42),
            "PROD-0042"
        );
        assert_eq!(&*Format::parse("driver_{}").unwrap().apply(7), "driver_7");
        assert!(Format::parse("no placeholder").is_err());
        assert!(Format::parse("PROD-{:x}").is_err());
    }
}
