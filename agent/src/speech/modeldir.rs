//! What a model directory is called: the name recorded in each segment and shown
//! in the agent's status (shared by the model installer and the engines).

use std::path::Path;

/// File in an installed model directory holding the model's name.
pub const NAME_FILE: &str = ".roomscribe-name";

/// A model directory's name as status and segments show it: the name recorded at
/// install, else the directory's own name.
pub fn display_name(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(NAME_FILE))
        .ok()
        .map(|n| n.trim().chars().take(80).collect::<String>())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}
