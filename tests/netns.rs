//! Remote mode across a real network stack on this machine: two network
//! namespaces joined by a veth pair, addresses from the benchmarking range
//! 198.18.0.0/15 (RFC 2544), `ipclab serve` in one and `ipclab run
//! --remote` in the other. Nothing of it is reachable from outside the two
//! namespaces, and nothing else is used. Every namespace, interface and
//! process is removed however a test ends (guards); a test skips with one
//! line where namespaces are not allowed (not root, no iproute2, a
//! container without CAP_SYS_ADMIN). `scripts/ensure-iproute2.sh`, run by
//! the first test that needs a link, installs iproute2 where it is missing.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::serve::{Serve, new_tag, run_ipclab, settled};

const SERVER_IP: &str = "198.18.0.1";
const CLIENT_IP: &str = "198.18.0.2";
const LIMIT: Duration = Duration::from_secs(180);

fn ip(args: &[&str]) -> std::io::Result<Output> {
    Command::new("ip").args(args).output()
}

fn ok(args: &[&str]) -> Result<(), String> {
    match ip(args) {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("ip {}: {e}", args.join(" "))),
    }
}

/// A network namespace of this test's, deleted on drop (with the veth end
/// in it, which takes its peer along).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// Two namespaces joined by a veth pair: the server's end 198.18.0.1/30,
/// the client's 198.18.0.2/30, and optionally `tc netem` delay on the
/// server's end.
struct Link {
    server: Netns,
    client: Netns,
    veth: (String, String),
}

impl Link {
    /// `Err` says why namespaces cannot be made here.
    fn new(name: &str, delay: Option<&str>) -> Result<Link, String> {
        let n = std::process::id() % 100_000;
        let base = format!("ipclab-{name}-{}", std::process::id());
        let server = Netns(format!("{base}-s"));
        ok(&["netns", "add", &server.0])?;
        let client = Netns(format!("{base}-c"));
        ok(&["netns", "add", &client.0])?;
        // Interface names are at most 15 bytes.
        let tag = &name[..name.len().min(3)];
        let veth = (format!("ilb{tag}{n}s"), format!("ilb{tag}{n}c"));
        ok(&[
            "link", "add", &veth.0, "netns", &server.0, "type", "veth", "peer", "name", &veth.1,
            "netns", &client.0,
        ])?;
        for (ns, dev, addr) in [
            (&server.0, &veth.0, SERVER_IP),
            (&client.0, &veth.1, CLIENT_IP),
        ] {
            ok(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ok(&["-n", ns, "link", "set", dev, "up"])?;
            ok(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        if let Some(d) = delay {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &server.0, "tc", "qdisc", "add", "dev", &veth.0,
                ])
                .args(["root", "netem", "delay", d])
                .output()
                .map_err(|e| format!("tc: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "tc netem: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(Link {
            server,
            client,
            veth,
        })
    }

    fn exec(ns: &Netns) -> [&str; 4] {
        ["ip", "netns", "exec", &ns.0]
    }
}

/// Installs iproute2 where it is missing and can be (root, apt-get), once
/// per test binary: `cargo test --workspace` alone sets up what it needs.
fn ensure_iproute2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ensure-iproute2.sh");
        // A failure shows as the skip line of `link_or_skip`.
        let _ = std::process::Command::new("bash").arg(script).status();
    });
}

/// The link, or `None` after printing one line saying why the test skips.
fn link_or_skip(test: &str, delay: Option<&str>) -> Option<Link> {
    ensure_iproute2();
    match Link::new(test, delay) {
        Ok(l) => Some(l),
        Err(why) => {
            println!("skipped {test}: cannot make two namespaces and their link here ({why})");
            None
        }
    }
}

/// What the test made is gone: namespaces, interfaces, processes.
fn assert_gone(names: &[String], tag: &str) {
    let netns = ip(&["netns", "list"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let links = ip(&["-o", "link"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    for name in names {
        assert!(
            !netns.as_deref().unwrap_or("").contains(name.as_str()),
            "{name} left"
        );
        assert!(
            !links.as_deref().unwrap_or("").contains(name.as_str()),
            "{name} left"
        );
    }
    assert_eq!(settled(tag, &[]), Vec::<i32>::new(), "processes left");
}

fn rows_across(link: &Link, tag: &str, mechanisms: &str, sizes: &str) -> serde_json::Value {
    let serve = Serve::start(
        &Link::exec(&link.server),
        &format!("{SERVER_IP}:0"),
        "veth-token-0123456789",
        tag,
    );
    assert!(serve.address.starts_with(SERVER_IP), "{}", serve.address);
    let out = run_ipclab(
        &Link::exec(&link.client),
        &[
            "run",
            "--remote",
            &serve.address,
            "--token",
            "veth-token-0123456789",
            "-m",
            mechanisms,
            "-s",
            sizes,
            "--repeat",
            "1",
            "--warmup",
            "10ms",
            "--duration",
            "50ms",
            "--timeout",
            "30s",
            "--json",
            "-",
        ],
        tag,
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for row in run["rows"].as_array().unwrap() {
        assert_eq!(row["placement"], "remote", "{row}");
        assert_eq!(row["remote"], serve.address.as_str());
        assert_eq!(row["verified"], true);
        assert!(row["iterations"].as_u64().unwrap() > 0, "{row}");
    }
    run
}

#[test]
fn tcp_and_udp_across_a_veth_pair_between_two_namespaces() {
    let tag = new_tag("netns");
    let names;
    {
        let Some(link) = link_or_skip("veth", None) else {
            return;
        };
        names = vec![
            link.server.0.clone(),
            link.client.0.clone(),
            link.veth.0.clone(),
            link.veth.1.clone(),
        ];
        let run = rows_across(&link, &tag, "tcp,udp", "64,4K,1M");
        let rows = run["rows"].as_array().unwrap();
        // 2 mechanisms × 3 sizes × pingpong and stream.
        assert_eq!(rows.len(), 12, "{run}");
    }
    assert_gone(&names, &tag);
}

#[test]
fn a_netem_delay_on_the_link_shows_in_every_round_trip() {
    let tag = new_tag("netem");
    let names;
    {
        let Some(link) = link_or_skip("netem", Some("5ms")) else {
            return;
        };
        names = vec![link.server.0.clone(), link.client.0.clone()];
        let run = rows_across(&link, &tag, "tcp", "64");
        let rows = run["rows"].as_array().unwrap();
        let pingpong = rows.iter().find(|r| r["pattern"] == "pingpong").unwrap();
        // Every reply leaves the server's namespace through the delay.
        let min = pingpong["rtt_ns"]["min"].as_u64().unwrap();
        assert!(
            min >= 5_000_000,
            "a round trip of {min} ns beat the 5 ms delay"
        );
    }
    assert_gone(&names, &tag);
}

#[cfg(feature = "peers")]
#[test]
fn zenoh_tcp_across_a_veth_pair_between_two_namespaces() {
    let tag = new_tag("zenoh-netns");
    let names;
    {
        let Some(link) = link_or_skip("zenoh", None) else {
            return;
        };
        names = vec![link.server.0.clone(), link.client.0.clone()];
        let run = rows_across(&link, &tag, "zenoh-tcp", "64,1M");
        let rows = run["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4, "{run}");
        assert!(rows.iter().all(|r| r["family"] == "peer"));
    }
    assert_gone(&names, &tag);
}
