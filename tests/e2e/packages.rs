//! The .deb and .rpm packages (`make packages`, which `make test` runs first): their
//! file lists, modes, conffiles, users and scripts, read with dpkg-deb and rpm; the
//! appliance binary statically linked and the agent finding its bundled libvosk; then
//! the .debs installed on this machine, the appliance started the way its unit starts
//! it (service user, same command, systemd notification) until /readyz answers, a
//! model installed for the agent, an edited conffile kept across a reinstall, and
//! purge leaving only what policy says (the data directory with the records in it).

use roomscribe_tests::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn packages() -> PathBuf {
    repo_root().join("target/packages")
}

/// The one file in target/packages matching `prefix*suffix`.
fn package(prefix: &str, suffix: &str) -> anyhow::Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(packages())
        .map_err(|e| anyhow::anyhow!("target/packages: {e}: run `make packages`"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => anyhow::bail!("expected one {prefix}*{suffix} in target/packages (run `make packages`), found {found:?}"),
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program args`, without the test run's library path: installed programs must find
/// their libraries themselves.
fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env_remove("LD_LIBRARY_PATH");
    c
}

/// `dpkg-deb -c`: (mode string, path) per entry.
fn deb_files(deb: &Path) -> anyhow::Result<Vec<(String, String)>> {
    Ok(run(Command::new("dpkg-deb").arg("-c").arg(deb))?
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((
                cols.first()?.to_string(),
                cols.last()?.trim_start_matches('.').to_owned(),
            ))
        })
        .collect())
}

fn has(files: &[(String, String)], mode: &str, path: &str) -> bool {
    files.iter().any(|(m, p)| m == mode && p == path)
}

#[test]
fn packages_hold_what_on_prem_it_expects() -> anyhow::Result<()> {
    let deb = package("roomscribe_", "_amd64.deb")?;
    let files = deb_files(&deb)?;
    for (mode, path) in [
        ("-rwxr-xr-x", "/usr/bin/roomscribe"),
        ("-rw-r-----", "/etc/roomscribe/appliance.toml"),
        ("-rw-r--r--", "/usr/share/doc/roomscribe/README.md"),
    ] {
        assert!(has(&files, mode, path), "{path} {mode} in {files:?}");
    }
    assert!(
        files
            .iter()
            .any(|(_, p)| p.ends_with("systemd/system/roomscribe.service")),
        "{files:?}"
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb))?;
    assert!(info.contains("Package: roomscribe"), "{info}");
    let control = tempfile::tempdir()?;
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()))?;
    let read = |n: &str| std::fs::read_to_string(control.path().join(n)).unwrap_or_default();
    let (conffiles, postinst, postrm) = (read("conffiles"), read("postinst"), read("postrm"));
    assert!(
        conffiles.contains("/etc/roomscribe/appliance.toml"),
        "{conffiles}"
    );
    // The user and directories exist before the unit is enabled and started, once.
    let useradd = postinst.find("useradd --system");
    let enable = postinst.find("deb-systemd-helper enable");
    assert!(useradd.is_some() && useradd < enable, "{postinst}");
    assert_eq!(
        postinst.matches("deb-systemd-invoke").count(),
        1,
        "{postinst}"
    );
    assert!(
        postrm.contains("userdel roomscribe") && postrm.contains("kept /var/lib/roomscribe"),
        "{postrm}"
    );

    // The appliance binary needs nothing but the kernel.
    let tmp = tempfile::tempdir()?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(tmp.path()))?;
    let bin = tmp.path().join("usr/bin/roomscribe");
    let kind = run(Command::new("file").arg(&bin))?;
    assert!(
        kind.contains("static-pie linked") || kind.contains("statically linked"),
        "{kind}"
    );
    let ldd = Command::new("ldd").arg(&bin).output()?;
    let ldd =
        String::from_utf8_lossy(&ldd.stdout).to_string() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        ldd.contains("statically linked") || ldd.contains("not a dynamic executable"),
        "{ldd}"
    );
    let packaged = std::fs::read_to_string(tmp.path().join("etc/roomscribe/appliance.toml"))?;
    assert!(packaged.contains("data_dir = \"/var/lib/roomscribe\""));

    // The agent: libvosk beside it, found through its rpath.
    let agent_deb = package("roomscribe-agent_", "_amd64.deb")?;
    let files = deb_files(&agent_deb)?;
    for (mode, path) in [
        ("-rwxr-xr-x", "/usr/bin/roomscribe-agent"),
        ("-rw-r--r--", "/usr/lib/roomscribe-agent/libvosk.so"),
        ("-rw-r-----", "/etc/roomscribe/agent.toml"),
    ] {
        assert!(has(&files, mode, path), "{path} {mode} in {files:?}");
    }
    assert!(
        !files.iter().any(|(_, p)| p.contains("model/")),
        "no model shipped"
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&agent_deb))?;
    assert!(
        info.contains("libasound2") && info.contains("conffiles"),
        "{info}"
    );
    let tmp = tempfile::tempdir()?;
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&agent_deb)
        .arg(tmp.path()))?;
    let dynamic = run(Command::new("readelf")
        .arg("-d")
        .arg(tmp.path().join("usr/bin/roomscribe-agent")))?;
    assert!(
        // Beside the binary or in /usr/lib/roomscribe-agent; no build directory.
        dynamic.contains("Library runpath: [$ORIGIN:$ORIGIN/../lib/roomscribe-agent]")
            && dynamic.contains("Shared library: [libvosk.so]"),
        "{dynamic}"
    );

    // The rpms, read with Debian's rpm.
    for (name, bin, conf, user) in [
        (
            "roomscribe-0",
            "/usr/bin/roomscribe",
            "/etc/roomscribe/appliance.toml",
            "roomscribe",
        ),
        (
            "roomscribe-agent-0",
            "/usr/bin/roomscribe-agent",
            "/etc/roomscribe/agent.toml",
            "roomscribe-agent",
        ),
    ] {
        let rpm = package(name, ".x86_64.rpm")?;
        let list = run(Command::new("rpm").args(["-qlvp"]).arg(&rpm))?;
        assert!(
            list.lines()
                .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(bin)),
            "{list}"
        );
        assert!(
            list.lines()
                .any(|l| l.starts_with("-rw-r-----") && l.ends_with(conf)),
            "{list}"
        );
        let config = run(Command::new("rpm").args(["-qcp"]).arg(&rpm))?;
        assert!(config.contains(conf), "{config}");
        let scripts = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm))?;
        assert!(
            scripts.contains("useradd --system") && scripts.contains(&format!("userdel {user}")),
            "{scripts}"
        );
    }
    Ok(())
}

fn apt(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("apt-get")
        .args(["-y", "-q", "-o", "Dpkg::Options::=--force-confold"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn purge_if_installed(pkg: &str) {
    let _ = Command::new("dpkg").args(["--purge", pkg]).output();
}

#[tokio::test(flavor = "multi_thread")]
async fn debs_install_start_like_the_unit_and_purge_cleanly() -> anyhow::Result<()> {
    anyhow::ensure!(
        run(&mut cmd("id", &["-u"]))?.trim() == "0",
        "installing packages needs root (CI runs as root)"
    );
    let logs = artifacts("packages");
    let deb = package("roomscribe_", "_amd64.deb")?;
    purge_if_installed("roomscribe");
    let _ = std::fs::remove_dir_all("/var/lib/roomscribe");
    let _ = std::fs::remove_dir_all("/var/lib/roomscribe-keys");
    apt(&["install", &deb.to_string_lossy()])?;

    // What the package set up.
    let user = run(&mut cmd("getent", &["passwd", "roomscribe"]))?;
    assert!(
        user.contains("/var/lib/roomscribe") && user.contains("nologin"),
        "{user}"
    );
    for dir in ["/var/lib/roomscribe", "/var/lib/roomscribe-keys"] {
        let state = std::fs::metadata(dir)?;
        assert_eq!(state.permissions().mode() & 0o777, 0o700, "{dir}");
    }
    let conf = std::fs::metadata("/etc/roomscribe/appliance.toml")?;
    assert_eq!((conf.permissions().mode() & 0o777, conf.uid()), (0o640, 0));
    let group = run(&mut cmd(
        "stat",
        &["-c", "%G", "/etc/roomscribe/appliance.toml"],
    ))?;
    assert_eq!(group.trim(), "roomscribe");

    // Started as the unit starts it: its user, its command, no memory both writable
    // and executable (MemoryDenyWriteExecute=yes), systemd listening.
    let sock = NotifySocket::bind()?;
    let mut service = deny_write_execute(Path::new("/usr/bin/setpriv"))
        .args([
            "--reuid=roomscribe",
            "--regid=roomscribe",
            "--init-groups",
            "--no-new-privs",
        ])
        .args([
            "/usr/bin/roomscribe",
            "serve",
            "--config",
            "/etc/roomscribe/appliance.toml",
            "--data-dir",
            "/var/lib/roomscribe",
        ])
        .env("NOTIFY_SOCKET", &sock.path)
        // Only the ports differ from the packaged configuration (tests run in parallel).
        .env("ROOMSCRIBE_HTTP_LISTEN", "127.0.0.1:0")
        .env("ROOMSCRIBE_INGEST_LISTEN", "127.0.0.1:0")
        .current_dir("/")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(logs.join("service.stderr"))?)
        .spawn_guarded()?;
    assert!(
        sock.wait_for("READY=1", Duration::from_secs(30)),
        "READY=1 from the service"
    );
    let stdout = service
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    let ready = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find(|l| l.starts_with("Roomscribe ready"))
        .unwrap_or_default();
    let addr = ready
        .split("https://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let r = loopback_client()?
        .get(format!("https://{addr}/readyz"))
        .send()
        .await?;
    assert_eq!(
        (r.status().as_u16(), r.text().await?),
        (200, "ready".to_owned())
    );
    let boot = std::fs::metadata("/var/lib/roomscribe/bootstrap-admin.txt")?;
    assert_eq!(boot.permissions().mode() & 0o777, 0o600);
    let owner = run(&mut cmd(
        "stat",
        &["-c", "%U", "/var/lib/roomscribe/roomscribe.redb"],
    ))?;
    assert_eq!(
        owner.trim(),
        "roomscribe",
        "files belong to the service user"
    );
    // The meeting keys and the master key, beside the data directory, the service's.
    for f in ["keystore.json", "master.key"] {
        let path = format!("/var/lib/roomscribe-keys/{f}");
        let owner = run(&mut cmd("stat", &["-c", "%U %a", &path]))?;
        assert_eq!(owner.trim(), "roomscribe 600", "{path}");
    }
    // The installed admin commands find the packaged configuration themselves.
    let token = run(&mut cmd(
        "/usr/bin/roomscribe",
        &["enroll-token", "create", "--room", "Ward 4"],
    ))?;
    assert!(token.contains("single use"), "{token}");
    let doctor = Command::new("/usr/bin/roomscribe").arg("doctor").output()?;
    let doctor = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(
        doctor.contains("the appliance is running") && doctor.contains("0 failure(s)"),
        "{doctor}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    assert!(sock.wait_for("STOPPING=1", Duration::from_secs(30)));
    let _ = service.wait();

    // An edited configuration survives reinstalling the package.
    let mut edited = std::fs::read_to_string("/etc/roomscribe/appliance.toml")?;
    edited.push_str("\n# edited by the operator\n");
    std::fs::write("/etc/roomscribe/appliance.toml", &edited)?;
    run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(&deb))?;
    assert_eq!(
        std::fs::read_to_string("/etc/roomscribe/appliance.toml")?,
        edited
    );

    // Purge: configuration and user gone; the records kept, and said so.
    let out = Command::new("apt-get")
        .args(["-y", "-q", "purge", "roomscribe"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()?;
    assert!(out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("kept /var/lib/roomscribe "), "{said}");
    assert!(said.contains("kept /var/lib/roomscribe-keys"), "{said}");
    assert!(!Path::new("/etc/roomscribe/appliance.toml").exists());
    assert!(!Path::new("/usr/bin/roomscribe").exists());
    assert!(Command::new("getent")
        .args(["passwd", "roomscribe"])
        .output()?
        .stdout
        .is_empty());
    assert!(
        Path::new("/var/lib/roomscribe/roomscribe.redb").exists(),
        "meetings and audit log kept"
    );
    assert!(
        Path::new("/var/lib/roomscribe-keys/keystore.json").exists(),
        "the meeting keys kept"
    );
    std::fs::remove_dir_all("/var/lib/roomscribe")?;
    std::fs::remove_dir_all("/var/lib/roomscribe-keys")?;

    // The agent package: its user hears the microphones; a model goes in place.
    let agent_deb = package("roomscribe-agent_", "_amd64.deb")?;
    purge_if_installed("roomscribe-agent");
    let _ = std::fs::remove_dir_all("/var/lib/roomscribe-agent");
    apt(&["install", &agent_deb.to_string_lossy()])?;
    let groups = run(&mut cmd("id", &["-nG", "roomscribe-agent"]))?;
    assert!(groups.split_whitespace().any(|g| g == "audio"), "{groups}");
    let installed = run(&mut cmd(
        "/usr/bin/roomscribe-agent",
        &["model", "install", &model_dir().to_string_lossy()],
    ))?;
    assert!(
        installed.contains("/var/lib/roomscribe-agent/model") && installed.contains("it loads"),
        "{installed}"
    );
    // Its libvosk is the bundled one.
    let ldd = run(&mut cmd("ldd", &["/usr/bin/roomscribe-agent"]))?;
    assert!(
        ldd.contains("libvosk.so => /usr/bin/../lib/roomscribe-agent/libvosk.so"),
        "{ldd}"
    );
    let version = run(&mut cmd("/usr/bin/roomscribe-agent", &["--version"]))?;
    assert!(version.starts_with("roomscribe-agent "), "{version}");
    run(&mut cmd("dpkg", &["--purge", "roomscribe-agent"]))?;
    assert!(!Path::new("/usr/lib/roomscribe-agent/libvosk.so").exists());
    assert!(
        Path::new("/var/lib/roomscribe-agent/model").exists(),
        "kept with its contents"
    );
    std::fs::remove_dir_all("/var/lib/roomscribe-agent")?;
    let _ = std::fs::remove_dir("/etc/roomscribe");
    Ok(())
}

/// The exposure score `systemd-analyze security --offline=yes` gives a unit file.
fn exposure(unit: &Path) -> anyhow::Result<f64> {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .ok_or_else(|| anyhow::anyhow!("no exposure level for {}: {text}", unit.display()))?;
    let score = line
        .rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next());
    score
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unreadable exposure line {line:?}"))
}

#[test]
fn units_are_hardened_and_say_when_they_are_ready() -> anyhow::Result<()> {
    let dir = repo_root().join("systemd");
    let appliance = exposure(&dir.join("roomscribe.service"))?;
    let agent = exposure(&dir.join("roomscribe-agent.service"))?;
    eprintln!("systemd-analyze security: roomscribe.service {appliance}, roomscribe-agent.service {agent}");
    assert!(
        appliance <= 2.0,
        "appliance exposure {appliance} (target at most 2.0)"
    );
    assert!(agent <= 2.0, "agent exposure {agent}");
    // What the scores are made of, directive by directive.
    let unit = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    let (a, g) = (unit("roomscribe.service"), unit("roomscribe-agent.service"));
    for u in [&a, &g] {
        for d in [
            "Type=notify",
            "WatchdogSec=",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "MemoryDenyWriteExecute=yes",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        ] {
            assert!(u.contains(d), "{d:?} missing");
        }
    }
    assert!(
        a.contains("PrivateDevices=yes"),
        "the appliance needs no devices"
    );
    assert!(
        !g.contains("PrivateDevices=yes"),
        "the agent needs the microphones"
    );
    assert!(g.contains("DeviceAllow=char-alsa"));
    Ok(())
}
