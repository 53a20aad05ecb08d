//! Telling systemd how the service is doing (the `sd_notify` protocol, without
//! libsystemd): `READY=1` once every listener is bound, `WATCHDOG=1` on a timer while
//! storage answers (the unit's `WatchdogSec=` restarts a wedged appliance), and
//! `STOPPING=1` at shutdown. Outside systemd (no `$NOTIFY_SOCKET`) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// Sends `state` to the socket named like `$NOTIFY_SOCKET` (a path, or `@name` for
/// an abstract socket).
pub fn notify_to(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match socket.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), Path::new(socket))?;
        }
    }
    Ok(())
}

/// Sends `state` to systemd when it started us; errors are logged, never fatal.
pub fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(e) = notify_to(&socket, state) {
            tracing::warn!(error = %e, "sd_notify {state:?} failed");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is meant for
/// this process (`$WATCHDOG_PID`, if set, is our pid).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).expect("bind");
        notify_to(path.as_os_str(), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("roomscribe-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let rx = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "WATCHDOG=1").expect("send");
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
