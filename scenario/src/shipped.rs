//! The scenarios that ship with StreamCity (in the repository's `scenarios/` folder),
//! runnable by name.

use crate::{Scenario, ScenarioError};

/// The shipped scenarios' names.
pub const NAMES: [&str; 4] = ["civicsense", "user-events", "retail", "ridematch"];

/// The text of a shipped scenario.
pub fn text(name: &str) -> Option<&'static str> {
    Some(match name {
        "civicsense" => include_str!("../../scenarios/civicsense.toml"),
        "user-events" => include_str!("../../scenarios/user-events.toml"),
        "retail" => include_str!("../../scenarios/retail.toml"),
        "ridematch" => include_str!("../../scenarios/ridematch.toml"),
        _ => return None,
    })
}

/// A shipped scenario by name, or a scenario file by path.
pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some(text) = text(name_or_path) {
        return Scenario::parse(text, &format!("scenarios/{name_or_path}.toml"));
    }
    let path = std::path::Path::new(name_or_path);
    if !path.exists() {
        return Err(ScenarioError::Unknown(name_or_path.to_owned()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::Read(name_or_path.to_owned(), e))?;
    Scenario::parse(&text, name_or_path)
}
