//! The alert book: which alerts are active, so that each is raised once and cleared
//! once, with the same id in both records.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streamcity_core::{Alert, AlertState, Id, TimestampMs};

/// Active alerts by id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AlertBook {
    active: HashMap<Id, Alert>,
}

impl AlertBook {
    /// Raises `alert` unless one with its id is active; appends the raised record.
    pub fn raise(&mut self, alert: Alert, out: &mut Vec<Alert>) -> bool {
        if self.active.contains_key(&alert.alert_id) {
            return false;
        }
        self.active.insert(alert.alert_id.clone(), alert.clone());
        out.push(alert);
        true
    }

    /// Clears the active alert `id`, if any, at `ts`; appends the cleared record, with
    /// `message` when given.
    pub fn clear(
        &mut self,
        id: &str,
        ts: TimestampMs,
        message: Option<String>,
        out: &mut Vec<Alert>,
    ) -> bool {
        let Some(mut alert) = self.active.remove(id) else {
            return false;
        };
        alert.state = AlertState::Cleared;
        alert.timestamp = ts;
        alert.window_end = alert.window_end.max(ts);
        if let Some(m) = message {
            alert.message = m;
        }
        out.push(alert);
        true
    }

    /// Replaces the active alert of `alert`'s id with it and appends it as an
    /// `updated` record; nothing when that alert is not active.
    pub fn update(&mut self, mut alert: Alert, out: &mut Vec<Alert>) -> bool {
        let Some(active) = self.active.get_mut(&alert.alert_id) else {
            return false;
        };
        alert.state = AlertState::Updated;
        *active = alert.clone();
        active.state = AlertState::Raised;
        out.push(alert);
        true
    }

    /// The active alert `id`.
    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.active.get(id)
    }

    /// Every active alert.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// True when nothing is active.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}
