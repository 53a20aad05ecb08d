//! Telling systemd how a service is doing (the `sd_notify` protocol, without
//! libsystemd), shared by both binaries: `READY=1` once the service can do its work,
//! `WATCHDOG=1` on a timer while it is healthy (the unit's `WatchdogSec=` restarts a
//! wedged process), and `STOPPING=1` at shutdown. Outside systemd (no
//! `$NOTIFY_SOCKET`) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// Sends `state` to the socket named like `$NOTIFY_SOCKET` (a path, or `@name` for
/// an abstract socket). Never blocks: a listener that does not read (its queue holds
/// only `net.unix.max_dgram_qlen` messages) gets `WouldBlock`, not a stalled caller.
pub fn notify_to(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
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
        match notify_to(&socket, state) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tracing::debug!("sd_notify {state:?} dropped: the listener's queue is full");
            }
            Err(e) => tracing::warn!(error = %e, "sd_notify {state:?} failed"),
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

    #[test]
    fn a_listener_that_does_not_read_never_blocks_the_sender() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let _rx = UnixDatagram::bind(&path).expect("bind");
        // Far more than any datagram queue holds; a blocking send would hang here.
        let refused = (0..10_000)
            .filter(|_| notify_to(path.as_os_str(), "WATCHDOG=1").is_err())
            .count();
        assert!(
            refused > 0,
            "the queue filled and sends were refused, not blocked"
        );
    }
}
