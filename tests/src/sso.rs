//! Real identity systems for the sign-in tests, started on loopback: an OpenLDAP
//! server (Debian's slapd, with its own config and database in a temp dir) and an
//! OpenID Connect provider (`oidc-provider` from npm, tests/browser/oidc-provider.mjs)
//! behind HTTPS with a test CA made by openssl.

use crate::{repo_root, Running, SpawnGuarded};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port nothing listens on right now (for servers that must know each other's
/// address before they start).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| what.to_owned())?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Writes a file only its owner can read (what the appliance asks of secret files).
pub fn secret_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// A test CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it
/// (`server.pem`, `server.key`) in `dir`.
pub fn test_ca(dir: &Path) -> Result<()> {
    let p = |n: &str| dir.join(n);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=Roomscribe test CA",
            ])
            .args(ec)
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")),
        "openssl: test CA",
    )?;
    run(
        Command::new("openssl")
            .args(["req", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")),
        "openssl: server request",
    )?;
    std::fs::write(
        p("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )?;
    run(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("server.ext"))
            .arg("-out")
            .arg(p("server.pem")),
        "openssl: sign the server certificate",
    )?;
    Ok(())
}

/// A running OpenLDAP server with `dc=example,dc=org`, over LDAPS with a certificate
/// from [`test_ca`].
pub struct Slapd {
    _child: Running,
    pub port: u16,
    pub url: String,
    dir: PathBuf,
    tls: PathBuf,
}

pub const LDAP_BASE: &str = "dc=example,dc=org";
pub const LDAP_SERVICE_DN: &str = "cn=roomscribe,ou=services,dc=example,dc=org";
pub const LDAP_SERVICE_PASSWORD: &str = "service account secret";
const LDAP_ROOT_PASSWORD: &str = "directory manager secret";

/// One directory user: uid, password, groups (groupOfNames under ou=groups, or under
/// another organizational unit when written `ou/name`). Users see their groups in
/// `memberOf` too (slapd's dynlist overlay).
pub struct LdapUser<'a> {
    pub uid: &'a str,
    pub password: &'a str,
    pub name: &'a str,
    pub groups: &'a [&'a str],
}

impl Slapd {
    /// Starts slapd (LDAPS, certificate from `tls`, see [`test_ca`]) with `users` and
    /// their groups; only the service account may read the tree, and passwords only
    /// serve binds.
    pub fn start(dir: &Path, tls: &Path, logs: &Path, users: &[LdapUser<'_>]) -> Result<Self> {
        std::fs::create_dir_all(dir.join("db"))?;
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/dyngroup.schema
TLSCACertificateFile {tls}/ca.pem
TLSCertificateFile {tls}/server.pem
TLSCertificateKeyFile {tls}/server.key
pidfile {dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload dynlist
database mdb
suffix \"{LDAP_BASE}\"
rootdn \"cn=admin,{LDAP_BASE}\"
rootpw {root}
directory {dir}/db
overlay dynlist
dynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames
access to attrs=userPassword by anonymous auth by self auth by * none
access to * by dn.exact=\"{LDAP_SERVICE_DN}\" read by self read by * none
",
                dir = dir.display(),
                tls = tls.display(),
                root = hash(LDAP_ROOT_PASSWORD)?,
            ),
        )?;
        let mut ldif = format!(
            "dn: {LDAP_BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
dn: ou=people,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
dn: ou=groups,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
dn: ou=services,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
dn: {LDAP_SERVICE_DN}\nobjectClass: person\ncn: roomscribe\nsn: service\nuserPassword: {}\n\n",
            hash(LDAP_SERVICE_PASSWORD)?
        );
        let mut groups: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for u in users {
            ldif.push_str(&format!(
                "dn: uid={uid},ou=people,{LDAP_BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: {name}\nmail: {uid}@example.org\nuserPassword: {pw}\n\n",
                uid = u.uid,
                name = u.name,
                pw = hash(u.password)?
            ));
            for g in u.groups {
                groups
                    .entry(g)
                    .or_default()
                    .push(format!("uid={},ou=people,{LDAP_BASE}", u.uid));
            }
        }
        let mut units = std::collections::BTreeSet::new();
        for g in groups.keys() {
            if let Some((ou, _)) = g.split_once('/') {
                if ou != "groups" && units.insert(ou.to_owned()) {
                    ldif.push_str(&format!(
                        "dn: ou={ou},{LDAP_BASE}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
                    ));
                }
            }
        }
        for (g, members) in groups {
            let (ou, cn) = g.split_once('/').unwrap_or(("groups", g));
            ldif.push_str(&format!(
                "dn: cn={cn},ou={ou},{LDAP_BASE}\nobjectClass: groupOfNames\ncn: {cn}\n"
            ));
            for m in members {
                ldif.push_str(&format!("member: {m}\n"));
            }
            ldif.push('\n');
        }
        std::fs::write(dir.join("data.ldif"), ldif)?;
        run(
            Command::new("slapadd")
                .arg("-f")
                .arg(&conf)
                .arg("-l")
                .arg(dir.join("data.ldif")),
            "slapadd",
        )?;
        let port = crate::sso::free_port()?;
        let url = format!("ldaps://127.0.0.1:{port}");
        let child = Command::new("slapd")
            .arg("-f")
            .arg(&conf)
            .args(["-h", &format!("{url}/"), "-d", "256"])
            .stdout(std::fs::File::create(logs.join("slapd.stdout"))?)
            .stderr(std::fs::File::create(logs.join("slapd.stderr"))?)
            .spawn_guarded()
            .context("starting slapd (scripts/setup.sh installs it)")?;
        wait_for_port(port, "slapd")?;
        Ok(Self {
            _child: child,
            port,
            url,
            dir: dir.to_owned(),
            tls: tls.to_owned(),
        })
    }

    /// Applies an LDIF change as the directory manager (`ldapmodify`).
    pub fn modify(&self, ldif: &str) -> Result<()> {
        let f = self.dir.join("change.ldif");
        std::fs::write(&f, ldif)?;
        run(
            Command::new("ldapmodify")
                .env("LDAPTLS_CACERT", self.tls.join("ca.pem"))
                .args([
                    "-x",
                    "-H",
                    &self.url,
                    "-D",
                    &format!("cn=admin,{LDAP_BASE}"),
                ])
                .args(["-w", LDAP_ROOT_PASSWORD, "-f"])
                .arg(&f),
            "ldapmodify",
        )?;
        Ok(())
    }
}

/// `{SSHA}` hash of a password (slappasswd).
fn hash(password: &str) -> Result<String> {
    Ok(run(
        Command::new("slappasswd").args(["-s", password]),
        "slappasswd",
    )?
    .trim()
    .to_owned())
}

/// A running OpenID Connect provider.
pub struct OidcProvider {
    _child: Running,
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider on `port` with one client whose only redirect URI is
    /// `redirect_uri`; `tls` holds `server.pem`/`server.key` from [`test_ca`].
    pub fn start(
        port: u16,
        tls: &Path,
        logs: &Path,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
    ) -> Result<Self> {
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/browser/oidc-provider.mjs"))
            .arg(port.to_string())
            .arg(tls.join("server.pem"))
            .arg(tls.join("server.key"))
            .args([client_id, client_secret, redirect_uri])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(logs.join("oidc-provider.stderr"))?)
            .spawn_guarded()
            .context("starting the OpenID Connect provider (npm packages: scripts/setup.sh)")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        // Keep reading: the provider logs notices, and a closed pipe would kill it.
        let mut log = std::fs::File::create(logs.join("oidc-provider.stdout"))?;
        std::thread::spawn(move || std::io::copy(&mut reader, &mut log));
        let issuer = line
            .strip_prefix("issuer ")
            .map(|s| s.trim().to_owned())
            .with_context(|| format!("the provider did not start: {line:?}"))?;
        Ok(Self {
            _child: child,
            issuer,
        })
    }
}
