//! Operators' actions on alerts: acknowledgements and mutes. A dashboard taking one
//! publishes it on the compacted `alert_actions` topic and shows it only once it reads
//! it back, like every other dashboard: all agree, and a restarted one reads them
//! again. Each alert is shown with its acknowledgement and the mute silencing it.

use std::collections::{BTreeMap, VecDeque};

use streamcity_core::{
    Acknowledgement, Alert, AlertAction, Bus, CancellationToken, Id, MuteScope, Record,
    TimestampMs, decode_valid, encode,
};
use tokio::sync::{mpsc, oneshot};

use super::Live;
use super::feed::Item;

/// Acknowledgements kept at most (of alerts active, or not seen yet); beyond, the
/// oldest go.
pub const MAX_ACKS: usize = 10_000;
/// Mutes kept at most.
pub const MAX_MUTES: usize = 1_000;

/// The acknowledgements and mutes in force.
#[derive(Debug, Default)]
pub(super) struct Actions {
    acks: BTreeMap<Id, Acknowledgement>,
    order: VecDeque<Id>,
    mutes: BTreeMap<MuteScope, (TimestampMs, String)>,
}

impl Actions {
    /// Marks `alert` with its acknowledgement and the latest end of the mutes covering
    /// it; true when that changed it.
    pub(super) fn annotate(&self, alert: &mut Alert) -> bool {
        let ack = self.acks.get(&alert.alert_id).cloned();
        let muted = self
            .mutes
            .iter()
            .filter(|(scope, _)| scope.covers(alert))
            .map(|(_, (until, _))| *until)
            .max();
        let changed = alert.acknowledged != ack || alert.muted_until != muted;
        alert.acknowledged = ack;
        alert.muted_until = muted;
        changed
    }

    fn ack(&mut self, alert_id: Id, ack: Option<Acknowledgement>) {
        match ack {
            Some(ack) => {
                if self.acks.insert(alert_id.clone(), ack).is_none() {
                    self.order.push_back(alert_id);
                }
                while self.acks.len() > MAX_ACKS {
                    match self.order.pop_front() {
                        Some(old) => {
                            self.acks.remove(&old);
                        }
                        None => break,
                    }
                }
            }
            None => {
                self.acks.remove(&alert_id);
            }
        }
    }

    /// Forgets the acknowledgement of an alert that cleared.
    pub(super) fn cleared(&mut self, alert_id: &str) {
        self.acks.remove(alert_id);
    }

    /// The mutes in force at `now` (wall clock, ms), as JSON.
    pub(super) fn mutes_json(&self, now: TimestampMs) -> serde_json::Value {
        serde_json::Value::Array(
            self.mutes
                .iter()
                .filter(|(_, (until, _))| *until > now)
                .map(|(scope, (until, by))| {
                    let mut v = serde_json::to_value(scope).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("until".into(), (*until).into());
                        o.insert("by".into(), by.clone().into());
                    }
                    v
                })
                .collect(),
        )
    }
}

/// An action to publish, and where to say whether the bus took it.
pub type Publish = (Record, oneshot::Sender<Result<(), String>>);

/// Why an action was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// This dashboard publishes no actions (no bus to publish on).
    #[error("this dashboard does not take actions")]
    Unavailable,
    /// The bus refused or failed.
    #[error("the bus did not take the action: {0}")]
    Bus(String),
}

impl Live {
    /// Publishes actions through `tx` (the bus's side: [`publish_actions`]).
    pub fn take_actions_through(&self, tx: mpsc::Sender<Publish>) {
        *self
            .publisher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    }

    /// Publishes `action` on `alert_actions`; returns once the bus has taken it (it is
    /// shown when read back).
    pub async fn publish_action(&self, action: &AlertAction) -> Result<(), ActionError> {
        let tx = self
            .publisher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(ActionError::Unavailable)?;
        let record = Record::new(
            &self.topics.alert_actions,
            action.key(),
            encode(action),
            streamcity_core::clock::wall_clock_ms(),
        );
        let (done, taken) = oneshot::channel();
        tx.send((record, done))
            .await
            .map_err(|_| ActionError::Unavailable)?;
        taken
            .await
            .map_err(|_| ActionError::Unavailable)?
            .map_err(ActionError::Bus)
    }

    /// The mutes in force, as JSON.
    pub fn mutes_json(&self) -> serde_json::Value {
        self.read()
            .views
            .actions
            .mutes_json(streamcity_core::clock::wall_clock_ms())
    }

    /// An action read from `alert_actions` (a tombstone lifts the action its key
    /// names): kept, and the alerts it touches shown again with it.
    pub(super) fn apply_action(&self, record: &Record) -> bool {
        let key = record.key_str();
        let mut state = self.write();
        let actions = &mut state.views.actions;
        if record.payload.is_empty() {
            if let Some(id) = key.strip_prefix("ack/") {
                actions.ack(Id::from(id), None);
            } else if let Some(scope) = actions.mutes.keys().find(|s| s.key() == key).cloned() {
                actions.mutes.remove(&scope);
            } else {
                return true;
            }
        } else {
            let Ok(action) = decode_valid::<AlertAction>(&record.payload) else {
                return false;
            };
            if action.key() != key {
                return false;
            }
            match action {
                AlertAction::Ack { alert_id, ack } => actions.ack(alert_id, Some(ack)),
                AlertAction::Mute {
                    scope, until, by, ..
                } => {
                    if until <= streamcity_core::clock::wall_clock_ms() {
                        actions.mutes.remove(&scope);
                    } else if actions.mutes.len() < MAX_MUTES || actions.mutes.contains_key(&scope)
                    {
                        actions.mutes.insert(scope, (until, by));
                    }
                }
            }
        }
        // Show the alerts it changed as they now are.
        let state = &mut *state;
        for (alert, raw) in state.views.active.values_mut() {
            if state.views.actions.annotate(alert) {
                *raw = encode(&*alert);
                state.feed.pending_alerts.push(Item {
                    raw: raw.clone(),
                    route: None,
                    kind: Some(alert.kind),
                    at: alert.lat.zip(alert.lon),
                });
            }
        }
        true
    }
}

/// Publishes the actions `rx` brings on `bus` until `stop` (or `rx` closes), saying
/// for each whether the bus took it.
pub async fn publish_actions<B: Bus>(
    bus: B,
    mut rx: mpsc::Receiver<Publish>,
    stop: CancellationToken,
) {
    loop {
        let (record, done) = tokio::select! {
            got = rx.recv() => match got {
                Some(got) => got,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let result = match bus.publish(record).await {
            Ok(()) => bus.flush().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "An operator's action was not published");
        }
        let _ = done.send(result);
    }
}
