use std::collections::HashMap;
use std::sync::Arc;

use miren_core::model::SandboxStatus;

use super::*;
use crate::zone::{AppZone, sandbox};

/// shop: web ×2 (one v6), postgres, worker (no port), cache scaled to zero;
/// blog: web. 10.0.0.x are shop's, 10.1.0.x blog's.
fn zone() -> Zone {
    use SandboxStatus::*;
    let shop = AppZone::build(
        ["web", "postgres", "worker", "cache"],
        &[
            sandbox("shop", "web", "10.0.0.2:8080", Running),
            sandbox("shop", "web", "[fd00::3]:8080", Running),
            sandbox("shop", "web", "10.0.0.9:8080", Pending),
            sandbox("shop", "postgres", "10.0.0.4:5432", Running),
            sandbox("shop", "worker", "10.0.0.5", Running),
        ],
    );
    let blog = AppZone::build(["web"], &[sandbox("blog", "web", "10.1.0.2:80", Running)]);
    let apps: HashMap<Arc<str>, Arc<AppZone>> = [
        ("shop".into(), Arc::new(shop)),
        ("blog".into(), Arc::new(blog)),
    ]
    .into();
    Zone::new(apps, 7)
}

const SHOP: &str = "10.0.0.2";
const SHOP_BOOTING: &str = "10.0.0.9";
const BLOG: &str = "10.1.0.2";
const OPERATOR: &str = "127.0.0.1";

fn ask(name: &str, qtype: RecordType, from: &str) -> Outcome {
    let n = Name::from_ascii(name).expect("a valid name").to_lowercase();
    answer(&zone(), &n, qtype, from.parse().expect("an address"))
}

fn reply(name: &str, qtype: RecordType, from: &str) -> Reply {
    match ask(name, qtype, from) {
        Outcome::Reply(r) => r,
        Outcome::Forward => panic!("{name} was forwarded"),
    }
}

/// The answer section as text: `A 10.0.0.2`, `SRV 8080 10-0-0-2.web.shop.app.miren.`.
fn data(r: &Reply) -> Vec<String> {
    r.answers.iter().chain(&r.additionals).map(text).collect()
}

fn text(rec: &Record) -> String {
    match &rec.data {
        RData::A(a) => format!("A {a}"),
        RData::AAAA(a) => format!("AAAA {a}"),
        RData::SRV(s) => format!("SRV {} {}", s.port, s.target),
        RData::TXT(t) => format!("TXT {t}"),
        RData::SOA(s) => format!("SOA {}", s.serial),
        other => format!("{other:?}"),
    }
}

fn is_nxdomain(r: &Reply) -> bool {
    r.code == ResponseCode::NXDomain && r.answers.is_empty() && soa_in_authority(r)
}

fn is_nodata(r: &Reply) -> bool {
    r.code == ResponseCode::NoError && r.answers.is_empty() && soa_in_authority(r)
}

fn soa_in_authority(r: &Reply) -> bool {
    matches!(r.authority.as_slice(), [soa] if soa.record_type() == RecordType::SOA && soa.name == *ORIGIN)
}

#[test]
fn a_sandbox_resolves_its_own_apps_services_by_short_name() {
    let r = reply("web.app.miren.", RecordType::A, SHOP);
    assert_eq!(r.code, ResponseCode::NoError);
    assert_eq!(
        data(&r),
        ["A 10.0.0.2"],
        "the booting instance is not an answer"
    );
    assert!(r.answers.iter().all(|a| a.ttl == TTL));
    assert_eq!(
        data(&reply("web.app.miren.", RecordType::AAAA, SHOP)),
        ["AAAA fd00::3"]
    );
    assert_eq!(
        data(&reply("postgres.app.miren.", RecordType::A, SHOP)),
        ["A 10.0.0.4"]
    );
    // A booting sandbox already is a caller: it resolves its database at start.
    assert_eq!(
        data(&reply("postgres.app.miren.", RecordType::A, SHOP_BOOTING)),
        ["A 10.0.0.4"]
    );
    // Names are case-insensitive.
    assert_eq!(
        data(&reply("PostGres.App.Miren.", RecordType::A, SHOP)),
        ["A 10.0.0.4"]
    );
}

#[test]
fn the_same_short_name_means_each_callers_own_app() {
    assert_eq!(
        data(&reply("web.app.miren.", RecordType::A, BLOG)),
        ["A 10.1.0.2"]
    );
    assert!(
        is_nxdomain(&reply("postgres.app.miren.", RecordType::A, BLOG)),
        "blog has no postgres"
    );
}

#[test]
fn qualified_names_answer_operators_and_the_same_app_and_refuse_other_apps() {
    for from in [OPERATOR, SHOP] {
        assert_eq!(
            data(&reply("postgres.shop.app.miren.", RecordType::A, from)),
            ["A 10.0.0.4"]
        );
    }
    for name in [
        "postgres.shop.app.miren.",
        "web.shop.app.miren.",
        "shop.app.miren.",
        "_web._tcp.shop.app.miren.",
    ] {
        let r = reply(name, RecordType::A, BLOG);
        assert_eq!(r.code, ResponseCode::Refused, "{name} from another app");
        assert!(r.answers.is_empty() && r.additionals.is_empty());
    }
}

#[test]
fn short_names_mean_nothing_to_operators() {
    assert!(is_nxdomain(&reply(
        "postgres.app.miren.",
        RecordType::A,
        OPERATOR
    )));
    assert!(
        is_nodata(&reply("shop.app.miren.", RecordType::A, OPERATOR)),
        "an app's own node exists"
    );
}

#[test]
fn unknown_names_are_nxdomain_and_known_names_of_another_type_nodata() {
    assert!(is_nxdomain(&reply(
        "nope.shop.app.miren.",
        RecordType::A,
        OPERATOR
    )));
    assert!(is_nxdomain(&reply(
        "web.nope.app.miren.",
        RecordType::A,
        OPERATOR
    )));
    assert!(is_nxdomain(&reply(
        "a.b.c.d.app.miren.",
        RecordType::A,
        OPERATOR
    )));
    assert!(is_nxdomain(&reply(
        "_nope._tcp.shop.app.miren.",
        RecordType::SRV,
        OPERATOR
    )));
    // v4-only postgres asked for AAAA; a worker (address, no port) asked for SRV.
    assert!(is_nodata(&reply(
        "postgres.shop.app.miren.",
        RecordType::AAAA,
        OPERATOR
    )));
    assert!(is_nodata(&reply(
        "postgres.shop.app.miren.",
        RecordType::MX,
        OPERATOR
    )));
    assert!(is_nodata(&reply(
        "_worker._tcp.shop.app.miren.",
        RecordType::SRV,
        OPERATOR
    )));
    // A service scaled to zero exists: NODATA, not NXDOMAIN (a client must not cache
    // that the name is gone).
    assert!(is_nodata(&reply(
        "cache.shop.app.miren.",
        RecordType::A,
        OPERATOR
    )));
    let soa = &reply("nope.shop.app.miren.", RecordType::A, OPERATOR).authority[0];
    assert_eq!(text(soa), "SOA 7", "the serial follows the zone");
}

#[test]
fn srv_gives_every_ready_instance_with_its_port_and_resolvable_targets() {
    let r = reply("_web._tcp.app.miren.", RecordType::SRV, SHOP);
    assert_eq!(
        data(&r),
        [
            "SRV 8080 10-0-0-2.web.shop.app.miren.",
            "SRV 8080 fd00--3.web.shop.app.miren.",
            "A 10.0.0.2",
            "AAAA fd00::3",
        ]
    );
    assert_eq!(
        r.additionals[0].name.to_ascii(),
        "10-0-0-2.web.shop.app.miren."
    );
    let q = reply("_postgres._tcp.shop.app.miren.", RecordType::SRV, OPERATOR);
    assert_eq!(
        data(&q),
        ["SRV 5432 10-0-0-4.postgres.shop.app.miren.", "A 10.0.0.4"]
    );
    // The targets resolve on their own too.
    for (target, want) in [
        ("10-0-0-2.web.shop.app.miren.", "A 10.0.0.2"),
        ("fd00--3.web.shop.app.miren.", "AAAA fd00::3"),
    ] {
        assert_eq!(data(&reply(target, RecordType::ANY, OPERATOR)), [want]);
    }
    assert!(
        is_nxdomain(&reply(
            "10-0-0-9.web.shop.app.miren.",
            RecordType::A,
            OPERATOR
        )),
        "not ready"
    );
    assert!(is_nxdomain(&reply(
        "_web._tcp.app.miren.",
        RecordType::SRV,
        OPERATOR
    )));
}

#[test]
fn the_apex_has_the_soa_and_tells_a_sandbox_its_apps_services() {
    let r = reply("app.miren.", RecordType::TXT, SHOP);
    assert_eq!(r.code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    match &r.answers[0].data {
        RData::TXT(t) => {
            let names: Vec<String> = t
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            assert_eq!(names, ["cache", "postgres", "web", "worker"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        data(&reply("app.miren.", RecordType::SOA, OPERATOR)),
        ["SOA 7"]
    );
    assert!(is_nodata(&reply("app.miren.", RecordType::TXT, OPERATOR)));
    assert!(is_nodata(&reply("app.miren.", RecordType::A, SHOP)));
}

#[test]
fn out_of_zone_names_are_forwarded_for_sandboxes_and_refused_to_anyone_else() {
    assert_eq!(ask("example.com.", RecordType::A, SHOP), Outcome::Forward);
    assert_eq!(ask("miren.", RecordType::A, SHOP_BOOTING), Outcome::Forward);
    let r = reply("example.com.", RecordType::A, OPERATOR);
    assert_eq!(r.code, ResponseCode::Refused);
    assert!(r.answers.is_empty());
    // An address no sandbox has: refused, not forwarded.
    assert!(
        matches!(ask("example.com.", RecordType::A, "10.9.9.9"), Outcome::Reply(r) if r.code == ResponseCode::Refused)
    );
}

#[test]
fn two_services_naming_their_ports_alike_share_the_srv_name_in_any_order() {
    use SandboxStatus::*;
    let sandboxes = [
        sandbox("shop", "web", "127.0.0.2:8080", Running),
        sandbox("shop", "admin", "127.0.0.2:9090", Running),
    ];
    let http = |s: &str| {
        (
            s.to_string(),
            vec![("http".to_string(), "tcp".to_string(), None)],
        )
    };
    let mut answers = vec![];
    for order in [[http("web"), http("admin")], [http("admin"), http("web")]] {
        let shop = AppZone::build(["web", "admin"], &sandboxes).with_ports(order);
        let zone = Zone::new([("shop".into(), Arc::new(shop))].into(), 1);
        answers.push(data(&srv_reply(&zone, "_http._tcp.shop.app.miren.")));
    }
    assert_eq!(answers[0], answers[1], "the pools' order changes nothing");
    assert_eq!(
        answers[0],
        [
            "SRV 9090 127-0-0-2.admin.shop.app.miren.",
            "SRV 8080 127-0-0-2.web.shop.app.miren.",
            "A 127.0.0.2",
            "A 127.0.0.2",
        ],
        "each service's instances, each target under its own service"
    );
}

#[test]
fn a_named_or_udp_port_has_its_own_srv_name() {
    use SandboxStatus::*;
    let shop = AppZone::build(
        ["dns", "web"],
        &[
            sandbox("shop", "dns", "10.0.0.7:5353", Running),
            sandbox("shop", "web", "10.0.0.2:8080", Running),
        ],
    )
    .with_ports([
        (
            "dns".to_string(),
            vec![("resolver".to_string(), "udp".to_string(), None)],
        ),
        (
            "web".to_string(),
            vec![("http".to_string(), "tcp".to_string(), None)],
        ),
    ]);
    let zone = Zone::new([("shop".into(), Arc::new(shop))].into(), 1);
    let ask = |name: &str| srv_reply(&zone, name);
    assert_eq!(
        data(&ask("_resolver._udp.shop.app.miren.")),
        ["SRV 5353 10-0-0-7.dns.shop.app.miren.", "A 10.0.0.7"]
    );
    assert_eq!(
        data(&ask("_http._tcp.shop.app.miren.")),
        ["SRV 8080 10-0-0-2.web.shop.app.miren.", "A 10.0.0.2"]
    );
    // The names they replace are gone, and a UDP port has no TCP record.
    for gone in [
        "_dns._udp.shop.app.miren.",
        "_resolver._tcp.shop.app.miren.",
        "_web._tcp.shop.app.miren.",
    ] {
        assert_eq!(ask(gone).code, ResponseCode::NXDomain, "{gone}");
    }
}

#[test]
fn each_of_several_ports_has_its_srv_name_at_each_instances_own_port() {
    use SandboxStatus::*;
    // Two instances on the process runtime: each listens on its own extra ports.
    let mut a = sandbox("shop", "game", "127.0.0.1:41000", Running);
    a.ports = [("data".to_string(), 41001), ("dns".to_string(), 41002)].into();
    let mut b = sandbox("shop", "game", "127.0.0.2:42000", Running);
    b.ports = [("data".to_string(), 42001), ("dns".to_string(), 42002)].into();
    let mut booting = sandbox("shop", "game", "127.0.0.3:43000", Pending);
    booting.ports = [("data".to_string(), 43001)].into();
    let shop = AppZone::build(["game"], &[a, b, booting]).with_ports([(
        "game".to_string(),
        vec![
            ("admin".to_string(), "tcp".to_string(), None),
            (
                "data".to_string(),
                "tcp".to_string(),
                Some("data".to_string()),
            ),
            (
                "dns".to_string(),
                "udp".to_string(),
                Some("dns".to_string()),
            ),
        ],
    )]);
    let zone = Zone::new([("shop".into(), Arc::new(shop))].into(), 1);
    let ask = |name: &str| srv_reply(&zone, name);
    let srv_ports = |r: &Reply| -> Vec<String> {
        data(r)
            .into_iter()
            .filter(|l| l.starts_with("SRV"))
            .collect()
    };
    assert_eq!(
        srv_ports(&ask("_admin._tcp.shop.app.miren.")),
        [
            "SRV 41000 127-0-0-1.game.shop.app.miren.",
            "SRV 42000 127-0-0-2.game.shop.app.miren."
        ]
    );
    assert_eq!(
        srv_ports(&ask("_data._tcp.shop.app.miren.")),
        [
            "SRV 41001 127-0-0-1.game.shop.app.miren.",
            "SRV 42001 127-0-0-2.game.shop.app.miren."
        ]
    );
    assert_eq!(
        srv_ports(&ask("_dns._udp.shop.app.miren.")),
        [
            "SRV 41002 127-0-0-1.game.shop.app.miren.",
            "SRV 42002 127-0-0-2.game.shop.app.miren."
        ]
    );
    for gone in ["_dns._tcp.shop.app.miren.", "_game._tcp.shop.app.miren."] {
        assert_eq!(ask(gone).code, ResponseCode::NXDomain, "{gone}");
    }
}

/// The reply to an operator's SRV question.
fn srv_reply(zone: &Zone, name: &str) -> Reply {
    let n = Name::from_ascii(name).expect("a valid name");
    match answer(zone, &n, RecordType::SRV, OPERATOR.parse().expect("ip")) {
        Outcome::Reply(r) => r,
        Outcome::Forward => panic!("forwarded"),
    }
}
