//! TLS distribution against BEAM nodes started with `-proto_dist inet_tls -ssl_dist_optfile F`
//! (Erlang/OTP *ssl* User's Guide, "Using TLS for Erlang Distribution"): erlnode accepts and
//! dials with the same optfile the BEAM nodes read, with mutual authentication, and refuses what
//! it must (a plain-TCP peer, another CA's certificate, an expired one, a missing client
//! certificate, a certificate for another host, a stalled handshake) without disturbing the
//! connections that are up. Every certificate is made by the test (rcgen).

mod common;
#[path = "common/served.rs"]
mod served;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use served::{Served, erlnode};

const T: Duration = Duration::from_secs(30);
/// A refused one-shot command must end within the connection setup deadline (erlnode's
/// `NET_SETUPTIME` of 7 s, twice for a dial) plus start-up: a bound, not a performance target.
const REFUSAL_BOUND: Duration = Duration::from_secs(20);

/// A directory of certificates and optfiles, removed on drop.
struct Pki {
    dir: PathBuf,
}

/// One certificate authority: its PEM file and the issuer that signs node certificates.
struct Ca {
    pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// The files of one node identity.
#[derive(Clone)]
struct Identity {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(unique_name("erlnode-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn ca(&self, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = self.path(&format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    /// A node certificate for `host` (SAN `DNS:host`), for both server and client use.
    fn node(&self, file: &str, ca: &Ca, host: &str, expired: bool) -> Identity {
        let mut params = CertificateParams::new(vec![host.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let id = Identity { cert: self.path(&format!("{file}.pem")), key: self.path(&format!("{file}.key")) };
        std::fs::write(&id.cert, cert.pem()).unwrap();
        std::fs::write(&id.key, key.serialize_pem()).unwrap();
        id
    }

    /// An `-ssl_dist_optfile` presenting `id` (if any) on both sides, trusting `ca`, with
    /// mutual authentication; `client_extra` is appended to the client options.
    fn optfile(&self, file: &str, id: Option<&Identity>, ca: &Path, client_extra: &str) -> PathBuf {
        let s = |p: &Path| erlang_string(p.to_str().unwrap());
        let own =
            id.map(|id| format!("{{certfile, {}}}, {{keyfile, {}}}, ", s(&id.cert), s(&id.key))).unwrap_or_default();
        let text = format!(
            "%% made by tests/tls_interop.rs\n\
             [{{server, [{own}{{cacertfile, {ca}}}, {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}]}},\n \
              {{client, [{own}{{cacertfile, {ca}}}, {{verify, verify_peer}}{client_extra}]}}].\n",
            ca = s(ca)
        );
        let path = self.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The certificates and optfiles every test uses.
struct Setup {
    pki: Pki,
    /// Node certificate from the cluster CA, mutual auth: what every good member uses.
    good: PathBuf,
    /// Certificate from another CA, trusting the cluster CA.
    intruder: PathBuf,
    /// Cluster CA, expired certificate.
    expired: PathBuf,
    /// Trusts the cluster CA, presents no certificate.
    no_cert: PathBuf,
    /// Cluster CA, certificate for another host name.
    wrong_host: PathBuf,
    /// Like `good`, but the client offers TLS 1.3 only.
    tls13_only: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let pki = Pki::new();
        let host = hostname_short();
        let ca = pki.ca("cluster");
        let evil = pki.ca("intruder");
        let node = pki.node("node", &ca, &host, false);
        let good = pki.optfile("good.conf", Some(&node), &ca.pem, "");
        let intruder_id = pki.node("intruder", &evil, &host, false);
        // it knows the cluster CA's certificate (public), so its own checks pass and the
        // refusal is the other side's
        let intruder = pki.optfile("intruder.conf", Some(&intruder_id), &ca.pem, "");
        let expired_id = pki.node("expired", &ca, &host, true);
        let expired = pki.optfile("expired.conf", Some(&expired_id), &ca.pem, "");
        let no_cert = pki.optfile("no-cert.conf", None, &ca.pem, "");
        let other = pki.node("other-host", &ca, "not-this-host", false);
        let wrong_host = pki.optfile("wrong-host.conf", Some(&other), &ca.pem, "");
        let tls13_only = pki.optfile("tls13.conf", Some(&node), &ca.pem, ", {versions, ['tlsv1.3']}");
        Setup { pki, good, intruder, expired, no_cert, wrong_host, tls13_only }
    }
}

fn tls_args(optfile: &Path) -> Vec<String> {
    vec!["-proto_dist".into(), "inet_tls".into(), "-ssl_dist_optfile".into(), optfile.to_str().unwrap().to_string()]
}

fn beam(otp: &Otp, epmd: &Epmd, prefix: &str, optfile: Option<&Path>) -> BeamNode {
    let mut opts = NodeOpts::erlang().prefix(prefix);
    if let Some(f) = optfile {
        opts = opts.args(tls_args(f));
    }
    BeamNode::start(otp, epmd, opts)
}

fn serve_tls(epmd: &Epmd, optfile: &Path) -> Served {
    Served::start(epmd.port(), &["--proto-dist", "inet_tls", "--ssl-dist-optfile", optfile.to_str().unwrap()])
}

/// Runs a one-shot `erlnode` command with `optfile` (None: plain TCP); `(success, stdout,
/// stderr, elapsed)`.
fn oneshot(epmd: &Epmd, optfile: Option<&Path>, args: &[&str]) -> (bool, String, String, Duration) {
    let mut cmd = erlnode(epmd.port());
    cmd.args(["--cookie", DEFAULT_COOKIE]);
    if let Some(f) = optfile {
        cmd.args(["--proto-dist", "inet_tls", "--ssl-dist-optfile", f.to_str().unwrap()]);
    }
    let started = Instant::now();
    let o = cmd.args(args).output().expect("erlnode runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (o.status.success(), text(&o.stdout), text(&o.stderr), started.elapsed())
}

fn ping(from: &BeamNode, to: &str) -> String {
    from.eval(&format!("net_adm:ping({})", erlang_atom(to))).unwrap()
}

/// The TLS version `serve` logged for its connection with `peer`.
fn logged_version(zed: &Served, peer: &str) -> Option<String> {
    let needle = format!("peer={peer}");
    let line = zed.lines().into_iter().find(|l| l.contains("connection up") && l.contains(&needle))?;
    let v = line.split("tls=").nth(1)?.split_whitespace().next()?.to_string();
    Some(v)
}

/// The version each OTP release's TLS distribution negotiates with a client or server that
/// offers both 1.2 and 1.3.
fn expected_version(otp: &Otp) -> &'static str {
    if otp.version() >= 29 { "TLSv1_3" } else { "TLSv1_2" }
}

#[test]
fn beam_and_erlnode_talk_over_tls_both_ways() {
    let setup = Setup::new();
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let a = beam(otp, &epmd, "tls_a", Some(&setup.good));
        let zed = serve_tls(&epmd, &setup.good);
        let z = erlang_atom(&zed.name);

        // a TLS BEAM node dials erlnode: handshake, then the article's KV over TLS
        assert_eq!(ping(&a, &zed.name), "pong");
        assert_eq!(a.eval(&format!("gen_server:call({{kv1, {z}}}, {{set, foo, 123}})")).unwrap(), "true");
        assert_eq!(a.eval(&format!("gen_server:call({{kv1, {z}}}, {{get, foo}})")).unwrap(), "123");
        assert!(a.eval("nodes()").unwrap().contains(&zed.name));
        assert!(wait_until(T, || logged_version(&zed, a.name()).is_some()), "{:?}", zed.lines());
        assert_eq!(logged_version(&zed, a.name()).as_deref(), Some(expected_version(otp)), "{:?}", zed.lines());
        // ... and it is TLS on the BEAM side too
        let address = a.eval(&format!("net_kernel:node_info({z}, address)")).unwrap();
        assert!(address.contains(",tls,"), "{address}");

        // iex with the same optfile, as the README shows it
        let ex = BeamNode::start(otp, &epmd, NodeOpts::elixir().prefix("tls_iex").args(tls_args(&setup.good)));
        let ez = elixir_atom(&zed.name);
        assert_eq!(ex.eval(&format!("GenServer.call({{:kv1, {ez}}}, {{:get, :foo}})")).unwrap(), "123");

        // erlnode dials a TLS BEAM node: one-shot ping and rpc (data both ways after the handshake)
        let (ok, out, err, _) = oneshot(&epmd, Some(&setup.good), &["ping", a.name()]);
        assert!(ok && out == "pong", "{out} / {err}");
        let (ok, out, err, _) = oneshot(&epmd, Some(&setup.good), &["rpc", a.name(), "erlang", "node", "[]"]);
        assert!(ok && out == a.name(), "{out} / {err}");
        let (ok, out, err, _) = oneshot(&epmd, Some(&setup.good), &["rpc", a.name(), "lists", "seq", "[1, 3000]"]);
        assert!(ok && out.ends_with("2999,3000]"), "{out} / {err}");
    });
}

/// OTP 25's TLS distribution speaks TLS 1.2 only; OTP 29 negotiates 1.3. A client offering 1.3
/// alone is refused by the first and accepted by the second.
#[test]
fn tls_versions_as_each_otp_negotiates_them() {
    let setup = Setup::new();
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let a = beam(otp, &epmd, "tls_v", Some(&setup.good));
        let (ok, out, err, took) = oneshot(&epmd, Some(&setup.tls13_only), &["ping", a.name()]);
        if otp.version() >= 29 {
            assert!(ok && out == "pong", "{otp}: {out} / {err}");
        } else {
            assert!(!ok && out == "pang", "{otp}: a TLS 1.3-only client got {out} / {err}");
            assert!(err.contains("TLS handshake with"), "{otp}: {err}");
            assert!(took < REFUSAL_BOUND, "{otp}: {took:?}");
        }
    });
}

#[test]
fn refusals_are_logged_and_leave_other_connections_alone() {
    let setup = Setup::new();
    for_each_otp(|otp| {
        let epmd = Epmd::start(otp);
        let good = beam(otp, &epmd, "tls_good", Some(&setup.good));
        let zed = serve_tls(&epmd, &setup.good);
        let z = erlang_atom(&zed.name);
        assert_eq!(ping(&good, &zed.name), "pong");
        assert_eq!(good.eval(&format!("gen_server:call({{kv1, {z}}}, {{set, k, 1}})")).unwrap(), "true");
        let still_up = || {
            let nodes = good.eval("nodes()").unwrap();
            let got = good.eval(&format!("gen_server:call({{kv1, {z}}}, {{get, k}}, 5000)")).unwrap();
            assert!(nodes.contains(&zed.name) && got == "1", "{otp}: the good connection suffered: {nodes} {got}");
        };

        // a stalled TLS handshake: a socket that connects and says nothing
        let port = erlnode_port(&epmd, &zed.name);
        let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stalled.set_read_timeout(Some(T)).unwrap();

        // a plain-TCP BEAM node dials the TLS erlnode
        let plain = beam(otp, &epmd, "tls_plain", None);
        assert_eq!(ping(&plain, &zed.name), "pang");
        assert!(wait_until(T, || zed.has_line("not TLS (a node without -proto_dist inet_tls dialled this TLS node)")));

        // certificates erlnode refuses as a server: another CA, expired, none at all
        for (conf, prefix, why) in [
            (&setup.intruder, "tls_intruder", "UnknownIssuer"),
            (&setup.expired, "tls_expired", "certificate expired"),
            (&setup.no_cert, "tls_nocert", "peer sent no certificates"),
        ] {
            let n = beam(otp, &epmd, prefix, Some(conf));
            assert_eq!(ping(&n, &zed.name), "pang", "{prefix}");
            assert!(
                wait_until(T, || zed.lines().iter().any(|l| l.contains("TLS handshake with") && l.contains(why))),
                "{otp} {prefix}: no refusal logged: {:?}",
                zed.lines()
            );
        }
        // the stalled handshake ends at the setup deadline, and was logged as such
        let mut byte = [0u8; 1];
        let dropped = match stalled.read(&mut byte) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(dropped, "a stalled TLS handshake was not dropped");
        assert!(wait_until(T, || zed.has_line("inet_tls setup did not finish within 7s")), "{:?}", zed.lines());
        still_up();

        // erlnode without TLS dials a TLS node: refused, reported, non-zero, within seconds
        let (ok, out, plain_err, took) = oneshot(&epmd, None, &["ping", good.name()]);
        assert!(!ok && out == "pang", "{out} / {plain_err}");
        assert!(plain_err.contains("WARN") && plain_err.contains("the peer answered with TLS"), "{plain_err}");
        assert!(took < REFUSAL_BOUND, "{took:?}");
        // certificates erlnode refuses as a client: another CA, another host name
        for (conf, prefix, why) in [
            (&setup.intruder, "tls_evil_srv", "UnknownIssuer"),
            (&setup.wrong_host, "tls_wrong_host", "certificate not valid for name"),
        ] {
            let n = beam(otp, &epmd, prefix, Some(conf));
            let (ok, out, err, took) = oneshot(&epmd, Some(&setup.good), &["ping", n.name()]);
            assert!(!ok && out == "pang", "{prefix}: {out} / {err}");
            assert!(err.contains("TLS handshake with") && err.contains(why), "{prefix}: {err}");
            assert!(took < REFUSAL_BOUND, "{prefix}: {took:?}");
        }
        still_up();
    });
}

/// A "node" registered in EPMD that accepts connections and never answers: erlnode's TLS
/// client gives up at the setup deadline, says so, and the one-shot command fails.
#[test]
fn a_stalled_tls_server_is_given_up_on() {
    let setup = Setup::new();
    // no BEAM node takes part: one OTP's EPMD will do
    let otp = otp_versions().into_iter().next().expect("an OTP version");
    let epmd = Epmd::start(&otp);
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let alive = unique_name("silent");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _registration = rt
        .block_on(erlnode::epmd::client::register(("127.0.0.1", epmd.port()), &alive, port, false))
        .expect("registered");
    // hold every connection open, saying nothing
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    let silent = format!("{alive}@{}", hostname_short());
    // `call` waits for the connection attempt to end (ping's own 7 s reply timeout would race
    // the 7 s setup deadline)
    let (ok, out, err, took) = oneshot(&epmd, Some(&setup.good), &["call", &format!("{{kv1, '{silent}'}}"), "keys"]);
    assert!(!ok && out.is_empty(), "{out} / {err}");
    assert!(err.contains(&format!("cannot connect to {silent}")), "{err}");
    assert!(err.contains("WARN") && err.contains("did not finish within 7s"), "{err}");
    assert!(took < REFUSAL_BOUND, "{took:?}");
}

/// The port `name` listens on, from EPMD.
fn erlnode_port(epmd: &Epmd, name: &str) -> u16 {
    let alive = name.split('@').next().unwrap();
    let names = epmd.names().unwrap();
    let line = names.lines().find(|l| l.starts_with(&format!("name {alive} at port "))).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn bad_configuration_stops_the_command_and_names_the_problem() {
    let setup = Setup::new();
    let epmd_port = 1; // never reached: the command stops before starting a node
    let bad = setup.pki.path("bad.conf");
    std::fs::write(&bad, "[{server, [{certfile, \"x\"}, {password, \"p\"}]}, {client, [{ciphers, []}]}].").unwrap();
    for (args, want) in [
        (
            vec!["--proto-dist", "inet_tls", "--ssl-dist-optfile", bad.to_str().unwrap()],
            "server:password, client:ciphers",
        ),
        (vec!["--proto-dist", "inet_tls"], "needs --ssl-dist-optfile"),
        (vec!["--ssl-dist-optfile", setup.good.to_str().unwrap()], "needs --proto-dist inet_tls"),
        (vec!["--proto-dist", "inet_tls", "--ssl-dist-optfile", "/nonexistent.conf"], "/nonexistent.conf"),
    ] {
        let o =
            erlnode(epmd_port).args(["--cookie", DEFAULT_COOKIE]).args(&args).args(["ping", "a@b"]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
}
