//! The shipped scenarios against their seeds: every record has the fields of the
//! seed's documented example with their JSON types, keys are as documented, the
//! retail mix and gaps hold over 10,000 events, references and state hold (a sale's
//! inventory update, stock levels, drivers moving continuously), and the same seed
//! makes the same records.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};
use streamcity_network::{Network, SyntheticConfig, synthetic};
use streamcity_scenario::{Engine, Pace, Scenario, shipped};

/// 2025-12-25T10:30:00Z.
const START_MS: i64 = 1_766_658_600_000;

struct Out {
    topic: String,
    key: String,
    timestamp: i64,
    value: Value,
}

fn city() -> Network {
    synthetic::generate(SyntheticConfig::default())
}

fn run_with(
    scenario: &Scenario,
    network: &Network,
    seed: u64,
    pace: &Pace,
    records: usize,
) -> Vec<Out> {
    let mut engine = Engine::new(scenario, network, seed, START_MS, pace, &HashMap::new());
    let mut out = Vec::new();
    while out.len() < records {
        let before = out.len();
        engine.step(&mut |m| {
            out.push(Out {
                topic: m.topic.to_string(),
                key: String::from_utf8(m.key.to_vec()).expect("a UTF-8 key"),
                timestamp: m.timestamp,
                value: serde_json::from_slice(m.value).expect("the value is JSON"),
            });
        });
        assert!(
            out.len() > before || engine.next_ms() < i64::MAX,
            "the scenario stopped"
        );
    }
    out
}

fn run(name: &str, records: usize) -> Vec<Out> {
    let scenario = shipped::load(name).expect("a shipped scenario parses");
    run_with(&scenario, &city(), 42, &Pace::default(), records)
}

/// The JSON type of a value, and of what it holds.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!("int"),
        Value::Number(_) => json!("float"),
        Value::String(_) => json!("string"),
        Value::Array(items) => json!([items.first().map_or(json!("any"), shape)]),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// Every field of `example` is in `record` with the same JSON type (a float field may
/// hold a whole number written as one, `45.0`: it still reads as a float).
fn assert_like(record: &Value, example: &Value, what: &str) {
    let (got, want) = (shape(record), shape(example));
    let (Value::Object(got), Value::Object(want)) = (&got, &want) else {
        panic!("{what}: not an object: {record}");
    };
    for (field, kind) in want {
        let Some(have) = got.get(field) else {
            panic!("{what}: field {field} missing from {record}");
        };
        if kind.is_object() {
            assert_like(&record[field], &example[field], &format!("{what}.{field}"));
        } else {
            assert_eq!(
                have, kind,
                "{what}: field {field} has the wrong type in {record}"
            );
        }
    }
}

#[test]
fn user_events_match_the_seeds_examples_and_are_keyed_by_user() {
    let records = run("user-events", 3000);
    let examples = [
        json!({"user_id": 123, "event_type": "add_to_cart", "timestamp": "2024-01-15T10:30:00.123456",
               "metadata": {"product_id": "PROD-0042", "quantity": 2, "price": 45.99, "session_length": 12.5, "page": "/products"}}),
        json!({"user_id": 123, "event_type": "bounce", "timestamp": "2024-01-15T10:30:00.123456",
               "metadata": {"page": "/checkout", "session_length": 1.2, "referrer": "google", "device": "mobile"}}),
        json!({"user_id": 123, "event_type": "product_view", "timestamp": "2024-01-15T10:30:00.123456",
               "metadata": {"product_id": "PROD-0087", "category": "electronics", "price": 299.99, "view_duration": 45.5, "page": "/product-detail", "device": "desktop"}}),
    ];
    let mut kinds = BTreeMap::new();
    for r in &records {
        assert_eq!(r.topic, "user-events");
        let kind = r.value["event_type"].as_str().unwrap();
        *kinds.entry(kind.to_owned()).or_insert(0) += 1;
        let example = examples
            .iter()
            .find(|e| e["event_type"] == kind)
            .expect("a documented type");
        assert_like(&r.value, example, kind);
        let user = r.value["user_id"].as_i64().unwrap();
        assert!((1..=1000).contains(&user), "{}", r.value);
        assert_eq!(r.key, user.to_string(), "keyed by user_id");
        let ts = r.value["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2024-01-15T10:30:00.123456".len(), "{ts}");
        if let Some(p) = r.value["metadata"]["product_id"].as_str() {
            assert!(p.starts_with("PROD-") && p.len() == 9, "{p}");
        }
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    // One event every 3 seconds.
    for w in records.windows(2) {
        assert_eq!(w[1].timestamp - w[0].timestamp, 3000);
    }
}

#[test]
fn retail_keeps_its_mix_and_gaps_and_a_sale_moves_the_stock_of_its_store_and_product() {
    let scenario = shipped::load("retail").unwrap();
    let records = run_with(&scenario, &city(), 42, &Pace::default(), 16_000);
    // Events are the moments: records of one event share it.
    let mut events: Vec<(i64, Vec<&Out>)> = Vec::new();
    for r in &records {
        match events.last_mut() {
            Some((t, rs)) if *t == r.timestamp => rs.push(r),
            _ => events.push((r.timestamp, vec![r])),
        }
    }
    let events = &events[..10_000];
    let mut mix: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, rs) in events {
        let kind = match rs[0].topic.as_str() {
            "retail-sales-transactions" => "sales",
            "retail-inventory-updates" => "inventory",
            "retail-customer-events" => "customer",
            "retail-price-changes" => "price_change",
            "retail-restock-alerts" => "restock",
            other => panic!("unknown topic {other}"),
        };
        *mix.entry(kind).or_default() += 1;
    }
    for (kind, share) in [
        ("sales", 0.5),
        ("inventory", 0.2),
        ("customer", 0.15),
        ("price_change", 0.1),
        ("restock", 0.05),
    ] {
        let got = mix[kind] as f64 / events.len() as f64;
        assert!(
            (got - share).abs() <= 0.03,
            "{kind}: {got:.3} of events, want {share} ± 0.03 ({mix:?})"
        );
    }
    for w in events.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!((10_000..=60_000).contains(&gap), "a gap of {gap} ms");
    }
    // Sales come with their inventory update; stock follows every change.
    let mut stock: HashMap<(String, String), i64> = HashMap::new();
    for (_, rs) in events {
        if rs[0].topic == "retail-sales-transactions" {
            assert_eq!(rs.len(), 2, "a sale and its inventory update");
            let (sale, update) = (&rs[0].value, &rs[1].value);
            assert_eq!(rs[1].topic, "retail-inventory-updates");
            assert_eq!(sale["store_id"], update["store_id"]);
            assert_eq!(sale["product_id"], update["product_id"]);
            assert_eq!(
                update["quantity_change"].as_i64().unwrap(),
                -sale["quantity"].as_i64().unwrap()
            );
            assert_eq!(update["reason"], "sale");
            let total = sale["quantity"].as_f64().unwrap() * sale["unit_price"].as_f64().unwrap();
            assert!(
                (sale["total_amount"].as_f64().unwrap() - total).abs() < 0.006,
                "{sale}"
            );
        }
        for r in rs {
            let v = &r.value;
            let key_field = match r.topic.as_str() {
                "retail-customer-events" => "customer_id",
                "retail-price-changes" => "product_id",
                _ => "store_id",
            };
            assert_eq!(r.key, v[key_field].as_str().unwrap(), "{v}");
            let store_product = (
                v["store_id"].as_str().unwrap_or_default().to_owned(),
                v["product_id"].as_str().unwrap_or_default().to_owned(),
            );
            if r.topic == "retail-inventory-updates" {
                let level = v["new_quantity"].as_i64().unwrap();
                assert!(level >= 0, "{v}");
                if let Some(before) = stock.get(&store_product) {
                    let want = (before + v["quantity_change"].as_i64().unwrap()).max(0);
                    assert_eq!(level, want, "stock of {store_product:?}: {v}");
                }
                stock.insert(store_product, level);
            } else if r.topic == "retail-restock-alerts"
                && let Some(before) = stock.get(&store_product)
            {
                assert_eq!(v["current_stock"].as_i64().unwrap(), *before, "{v}");
            }
        }
    }
    assert!(
        stock.len() > 1000,
        "stock kept for {} store-products",
        stock.len()
    );
}

#[test]
fn ridematch_drivers_move_on_the_streets_and_riders_ask_between_stops() {
    let network = city();
    let scenario = shipped::load("ridematch").unwrap();
    let records = run_with(&scenario, &network, 42, &Pace::default(), 40_000);
    let driver = json!({"event_type": "driver_update", "driver_id": "driver_0", "lat": 40.7128, "lon": -74.0060,
        "status": "idle", "timestamp": "2025-01-19T18:00:00Z", "accept_rate_7d": 0.85, "avg_response_ms": 500});
    let rider = json!({"event_type": "rider_request", "request_id": "uuid-here", "rider_id": "rider_0",
        "origin": [40.7128, -74.0060], "dest": [40.7580, -73.9855], "timestamp": "2025-01-19T18:00:00Z", "pref_vehicle": "sedan"});
    let stops: HashSet<(i64, i64)> = network
        .stops
        .iter()
        .map(|s| ((s.lat * 1e6).round() as i64, (s.lon * 1e6).round() as i64))
        .collect();
    let mut last: HashMap<String, (i64, f64, f64)> = HashMap::new();
    let (mut drivers, mut riders) = (0, 0);
    for r in &records {
        assert_eq!(r.topic, "ridematch-events");
        let v = &r.value;
        match v["event_type"].as_str().unwrap() {
            "driver_update" => {
                drivers += 1;
                assert_like(v, &driver, "driver_update");
                let id = v["driver_id"].as_str().unwrap().to_owned();
                assert_eq!(r.key, id);
                let (lat, lon) = (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap());
                if let Some((t, la, lo)) = last.get(&id) {
                    let d = streamcity_core::geo::distance_m(
                        streamcity_core::geo::LatLon::new(*la, *lo),
                        streamcity_core::geo::LatLon::new(lat, lon),
                    );
                    let most = 45.0 / 3.6 * (r.timestamp - t) as f64 / 1000.0 + 1.0;
                    assert!(d <= most, "{id} jumped {d:.0} m in {} ms", r.timestamp - t);
                }
                last.insert(id, (r.timestamp, lat, lon));
                let rate = v["accept_rate_7d"].as_f64().unwrap();
                assert!((0.3..=1.0).contains(&rate));
            }
            "rider_request" => {
                riders += 1;
                assert_like(v, &rider, "rider_request");
                assert_eq!(r.key, v["rider_id"].as_str().unwrap());
                for end in ["origin", "dest"] {
                    let p = (
                        (v[end][0].as_f64().unwrap() * 1e6).round() as i64,
                        (v[end][1].as_f64().unwrap() * 1e6).round() as i64,
                    );
                    assert!(stops.contains(&p), "{end} {} is not a stop", v[end]);
                }
            }
            other => panic!("unknown event type {other}"),
        }
    }
    // About 10 driver updates a second, a request every ~3 s: the seed's rates.
    let seconds = (records.last().unwrap().timestamp - records[0].timestamp) as f64 / 1000.0;
    let per_s = drivers as f64 / seconds;
    assert!(
        (9.5..=10.5).contains(&per_s),
        "{per_s} driver updates a second"
    );
    let ratio = riders as f64 / drivers as f64;
    assert!(
        (0.02..=0.04).contains(&ratio),
        "{riders} requests for {drivers} updates"
    );
    assert!(last.len() == 200, "{} drivers reported", last.len());
}

#[test]
fn civicsense_emergency_and_infrastructure_events_match_the_seed() {
    let records = run("civicsense", 2000);
    let emergency = json!({"event_id": "EMG-1234567890-5678", "type": "weather_alert", "severity": "high",
        "message": "Severe thunderstorm warning in effect", "area": "Downtown", "affected_groups": ["general public"],
        "timestamp": "2025-12-25T10:30:00", "expires_at": "2025-12-25T16:30:00",
        "coordinates": {"lat": 40.7128, "lon": -74.0060}, "instructions": ["Stay indoors", "Monitor news"]});
    let infrastructure = json!({"event_id": "INF-1234567890-5678", "type": "power_outage", "severity": "high",
        "area": "Eastside", "cause": "Equipment failure", "affected_customers": 5000, "utility_company": "City Power & Light",
        "timestamp": "2025-12-25T10:30:00", "estimated_restoration": "2025-12-25T14:30:00", "status": "in_progress"});
    let network = city();
    let districts: HashSet<&str> = network.districts.iter().map(|d| d.name.as_str()).collect();
    let mut types: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut bursts = 0;
    for w in records.windows(2) {
        if w[0].topic == "emergency_events"
            && w[1].topic == "emergency_events"
            && w[0].timestamp == w[1].timestamp
        {
            bursts += 1;
        }
    }
    for r in &records {
        let v = &r.value;
        *types
            .entry((r.topic.clone(), v["type"].as_str().unwrap().to_owned()))
            .or_default() += 1;
        assert_eq!(r.key, v["event_id"].as_str().unwrap());
        let (example, prefix) = match r.topic.as_str() {
            "emergency_events" => (&emergency, "EMG-"),
            "infrastructure_events" => (&infrastructure, "INF-"),
            other => panic!("only the twin makes {other} (run by the binary)"),
        };
        assert_like(v, example, &r.topic);
        let id = v["event_id"].as_str().unwrap();
        let parts: Vec<&str> = id.strip_prefix(prefix).unwrap().split('-').collect();
        assert_eq!(parts[0].parse::<i64>().unwrap(), r.timestamp / 1000, "{id}");
        assert!(
            (1000..=9999).contains(&parts[1].parse::<i64>().unwrap()),
            "{id}"
        );
        assert!(districts.contains(v["area"].as_str().unwrap()), "{v}");
        for list in ["affected_groups", "instructions"] {
            if let Some(items) = v[list].as_array() {
                let distinct: HashSet<&Value> = items.iter().collect();
                assert_eq!(distinct.len(), items.len(), "{list} repeats: {v}");
            }
        }
        let end = v
            .get("expires_at")
            .or(v.get("estimated_restoration"))
            .unwrap()
            .as_str()
            .unwrap();
        assert!(end > v["timestamp"].as_str().unwrap(), "{v}");
    }
    let kinds: HashSet<&str> = types.keys().map(|(_, k)| k.as_str()).collect();
    for k in [
        "weather_alert",
        "fire",
        "public_safety",
        "health_advisory",
        "power_outage",
        "water_advisory",
        "internet_disruption",
        "road_closure",
    ] {
        assert!(kinds.contains(k), "no {k} in {types:?}");
    }
    // Emergencies every 5 s (15 % in bursts of 2 to 4), infrastructure every 15 s.
    let emergencies: usize = types
        .iter()
        .filter(|((t, _), _)| t == "emergency_events")
        .map(|(_, n)| n)
        .sum();
    let infra: usize = types
        .iter()
        .filter(|((t, _), _)| t == "infrastructure_events")
        .map(|(_, n)| n)
        .sum();
    let ratio = emergencies as f64 / infra as f64;
    assert!(
        (3.4..=4.4).contains(&ratio),
        "{emergencies} emergencies for {infra} infrastructure events"
    );
    assert!(bursts > 50, "{bursts} bursts");
}

#[test]
fn the_same_seed_makes_the_same_records_and_another_seed_others() {
    let text = |seed: u64| -> Vec<String> {
        let scenario = shipped::load("retail").unwrap();
        run_with(&scenario, &city(), seed, &Pace::default(), 500)
            .iter()
            .map(|r| format!("{} {} {} {}", r.topic, r.key, r.timestamp, r.value))
            .collect()
    };
    assert_eq!(text(7), text(7));
    assert_ne!(text(7), text(8));
}

#[test]
fn the_pace_flags_change_rates_gaps_and_bursts() {
    let scenario = shipped::load("user-events").unwrap();
    let network = city();
    let times = |pace: Pace| -> Vec<i64> {
        run_with(&scenario, &network, 1, &pace, 2000)
            .iter()
            .map(|r| r.timestamp)
            .collect()
    };
    // --rate 2: two a second on average, shape kept (fixed gaps).
    let t = times(Pace {
        rate: Some(2.0),
        ..Pace::default()
    });
    assert!(
        t.windows(2).all(|w| w[1] - w[0] == 500),
        "fixed half-second gaps"
    );
    // --min-delta 1 --max-delta 4: uniform gaps within.
    let t = times(Pace {
        uniform: Some((1.0, 4.0)),
        ..Pace::default()
    });
    let gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| (1000..=4000).contains(g)), "{gaps:?}");
    assert!(gaps.iter().collect::<HashSet<_>>().len() > 100, "gaps vary");
    // --burst 0.5 of 3: about half the moments carry three events.
    let t = times(Pace {
        burst: Some((0.5, 3)),
        ..Pace::default()
    });
    let mut per_moment: BTreeMap<i64, usize> = BTreeMap::new();
    for x in &t {
        *per_moment.entry(*x).or_default() += 1;
    }
    let triples = per_moment.values().filter(|n| **n == 3).count() as f64 / per_moment.len() as f64;
    assert!(
        (0.4..=0.6).contains(&triples),
        "{triples} of moments are bursts"
    );
}

#[test]
fn a_time_of_day_profile_shapes_the_rate() {
    let text = r#"
name = "profiled"
[[streams]]
name = "s"
rate = 0.05
profile = [0,0,0,0,0,0, 1,1,1,1,1,1, 4,4,4,4,4,4, 1,1,1,1,1,1]
[[streams.events]]
[[streams.events.records]]
topic = "t"
value = { n = { seq = 1 } }
"#;
    let scenario = Scenario::parse(text, "profiled.toml").unwrap();
    // The built-in city is on UTC: START_MS is 10:30.
    let t: Vec<i64> = run_with(&scenario, &city(), 3, &Pace::default(), 20_000)
        .iter()
        .map(|r| r.timestamp)
        .collect();
    let mut per_hour = [0usize; 24];
    for x in &t {
        per_hour[((x / 3_600_000) % 24) as usize] += 1;
    }
    let (night, morning, afternoon) = (
        per_hour[1..5].iter().sum::<usize>(),
        per_hour[7..11].iter().sum::<usize>() as f64,
        per_hour[13..17].iter().sum::<usize>() as f64,
    );
    // A quiet hour still moves on (an hour at most), so a few events fall at night.
    assert!(night < 50, "{per_hour:?}");
    assert!((3.0..=5.0).contains(&(afternoon / morning)), "{per_hour:?}");
}

#[test]
fn a_broken_scenario_is_refused_naming_the_place_and_the_fault() {
    let cases = [
        ("name = \"x\"", "streams"),
        (
            "name = \"x\"\n[[streams]]\nname = \"s\"\n[[streams.events]]\n[[streams.events.records]]\ntopic = \"t\"\nvalue = {}\n",
            "give the stream one of",
        ),
        (
            "name = \"x\"\n[[streams]]\nname = \"s\"\nevery = 1\n[[streams.events]]\n[[streams.events.records]]\ntopic = \"t\"\nvalue = { a = { unifrom = [1, 2] } }\n",
            "streams[0].events[0].records[0].value.a: unknown generator `unifrom`",
        ),
        (
            "name = \"x\"\n[[streams]]\nname = \"s\"\nevery = 1\n[[streams.events]]\n[[streams.events.records]]\ntopic = \"t\"\nvalue = { a = { ref = \"nobody\" } }\n",
            "`nobody` names nothing before it",
        ),
        (
            "name = \"x\"\n[[streams]]\nname = \"s\"\nevery = 1\n[[streams.events]]\n[[streams.events.records]]\ntopic = \"t\"\nvalue = { a = { choice = [1, 2], weights = [1] } }\n",
            "`weights` must be 2 numbers",
        ),
        (
            "name = \"x\"\n[[streams]]\nname = \"s\"\nevery = 1\n[[streams.events]]\n[[streams.events.records]]\ntopic = \"bad topic\"\nvalue = { a = 1 }\n",
            "Kafka topic name",
        ),
        (
            "name = \"x\"\n[[streams]]\nname = \"s\"\nevery = 1\n[[streams.events]]\npick = { p = \"nopool\" }\n[[streams.events.records]]\ntopic = \"t\"\nvalue = { a = 1 }\n",
            "no pool named",
        ),
        (
            "name = \"x\"\nstreams = 3\nsurprise = 1\n",
            "unknown key `surprise`",
        ),
        ("name = [", "not a valid TOML file"),
    ];
    for (text, want) in cases {
        let err = Scenario::parse(text, "mine.toml")
            .expect_err(text)
            .to_string();
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(err.starts_with("mine.toml"), "{err}");
    }
    let err = shipped::load("no-such-scenario").unwrap_err().to_string();
    assert!(
        err.contains("civicsense, user-events, retail, ridematch"),
        "{err}"
    );
}

#[test]
fn avro_schemas_follow_the_generators() {
    use streamcity_scenario::avro::AvroPlan;
    let schema = |scenario: &str, topic: &str| -> Value {
        let plan = AvroPlan::derive(&shipped::load(scenario).unwrap()).unwrap();
        let t = plan.topics.iter().find(|t| t.topic == topic).unwrap();
        serde_json::from_str(&t.json).unwrap()
    };
    let field = |record: &Value, name: &str| -> Value {
        record["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["type"]
            .clone()
    };
    let sale = schema("retail", "retail-sales-transactions");
    assert_eq!(sale["type"], "record");
    assert_eq!(field(&sale, "quantity"), "long");
    assert_eq!(field(&sale, "total_amount"), "double");
    assert_eq!(field(&sale, "store_id"), "string");
    let update = schema("retail", "retail-inventory-updates");
    assert_eq!(field(&update, "new_quantity"), "long");
    // Three kinds of user event: a union of three records, their metadata each its own.
    let user = schema("user-events", "user-events");
    assert_eq!(user.as_array().unwrap().len(), 3, "{user}");
    assert_eq!(field(&user[0], "metadata")["type"], "record");
    let rides = schema("ridematch", "ridematch-events");
    let request = rides
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            field(r, "event_type").is_string()
                && r["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["name"] == "origin")
        })
        .unwrap();
    assert_eq!(
        field(request, "origin"),
        json!({"type": "array", "items": "double"})
    );
    let emergency = schema("civicsense", "emergency_events");
    assert_eq!(field(&emergency, "coordinates")["type"], "record");
    assert_eq!(
        field(&emergency, "affected_groups"),
        json!({"type": "array", "items": "string"})
    );
}
