//! A meeting to the appliance: the durable queue and its quarantine, the QUIC transport, replication with resynchronisation, and the health every heartbeat reports.

pub mod health;
pub mod quarantine;
pub mod queue;
pub mod replicate;
pub mod transport;
