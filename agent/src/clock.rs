//! The agent's one wall clock: Unix milliseconds (meeting starts, envelope times,
//! the appliance's clock offset). Pure rules take times as arguments instead.

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
