//! What to answer (SPEC §7): a pure function of the zone, the question and who asks,
//! so every rule is tested without a socket.
//!
//! | name | answers |
//! |---|---|
//! | `<svc>.app.miren` | A/AAAA of the caller app's ready `svc` instances |
//! | `<svc>.<app>.app.miren` | the same for `app`; refused to other apps' sandboxes |
//! | `_<port>._<tcp or udp>[.<app>].app.miren` | SRV per ready instance with a port (`<port>`: its `port_name`, default the service, or the name of each of its `ports`, at the instance's own port of that name; `_udp` for a UDP one), targets' A/AAAA in the additional section |
//! | `<ip>.<svc>.<app>.app.miren` | an SRV target: that instance's address (`10-0-0-2`, `fd00--2`) |
//! | `app.miren` | SOA; TXT: the caller app's services |
//!
//! Unknown names get NXDOMAIN, known names of another type NODATA, both with the SOA
//! in the authority section; out-of-zone names are forwarded for sandboxes and refused
//! to anyone else, so the server is never an open resolver.

use std::net::IpAddr;
use std::sync::LazyLock;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use crate::zone::{AppZone, Instance, Zone};

/// Time to live of every answer (SPEC §7), and of a negative answer.
pub const TTL: u32 = 5;

/// `app.miren.`
pub static ORIGIN: LazyLock<Name> = LazyLock::new(|| fqdn("app.miren."));

fn fqdn(s: &str) -> Name {
    // Only called on constant, valid names.
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this.
    Reply(Reply),
    /// Out of the zone, from a sandbox: ask the upstream resolver.
    Forward,
}

/// An authoritative answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// NOERROR (with or without answers), NXDOMAIN or REFUSED.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the SOA, for negative answers.
    pub authority: Vec<Record>,
    /// The additional section: addresses of SRV targets.
    pub additionals: Vec<Record>,
}

impl Reply {
    fn new(code: ResponseCode) -> Reply {
        Reply {
            code,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// Answers `qname` (lowercase) of type `qtype`, asked from `src`.
pub fn answer(zone: &Zone, qname: &Name, qtype: RecordType, src: IpAddr) -> Outcome {
    answer_as(zone, qname, qtype, zone.caller(src))
}

/// Answers `qname` for a caller already known: `Some(app)`, a sandbox of `app`;
/// `None`, an outsider (an operator).
pub fn answer_as<'a>(
    zone: &'a Zone,
    qname: &Name,
    qtype: RecordType,
    caller: Option<&'a str>,
) -> Outcome {
    if !ORIGIN.zone_of(qname) {
        return match caller {
            Some(_) => Outcome::Forward,
            None => Outcome::Reply(Reply::new(ResponseCode::Refused)),
        };
    }
    let labels: Vec<&str> = qname
        .iter()
        .take(qname.num_labels().saturating_sub(ORIGIN.num_labels()) as usize)
        .map(|l| std::str::from_utf8(l).unwrap_or("\u{0}"))
        .collect();
    let q = Question {
        zone,
        qname,
        qtype,
        caller,
    };
    Outcome::Reply(match labels.as_slice() {
        [] => q.apex(),
        [svc] if svc.starts_with('_') => q.nxdomain(),
        [name] => match caller.and_then(|app| Some((app, zone.apps.get(app)?))) {
            Some((app, z)) if z.services.contains_key(*name) => q.service(app, z, name),
            // An app's own node: it exists (its services are below it), holds nothing.
            _ => match q.app(name) {
                Ok(_) => q.nodata(),
                Err(r) => r,
            },
        },
        [svc, proto @ ("_tcp" | "_udp")] => {
            match caller.and_then(|app| Some((app, zone.apps.get(app)?))) {
                Some((app, z)) => q.srv(app, z, svc, proto),
                None => q.nxdomain(),
            }
        }
        [svc, proto @ ("_tcp" | "_udp"), app] => match q.app(app) {
            Ok(z) => q.srv(app, z, svc, proto),
            Err(r) => r,
        },
        ["_tcp" | "_udp", app] => match q.app(app) {
            Ok(_) => q.nodata(),
            Err(r) => r,
        },
        [svc, app] => match q.app(app) {
            Ok(z) => q.service(app, z, svc),
            Err(r) => r,
        },
        [target, svc, app] => match q.app(app) {
            Ok(z) => q.target(z, svc, target),
            Err(r) => r,
        },
        _ => q.nxdomain(),
    })
}

struct Question<'a> {
    zone: &'a Zone,
    qname: &'a Name,
    qtype: RecordType,
    caller: Option<&'a str>,
}

impl<'a> Question<'a> {
    /// `app`'s zone, if the caller may see it: operators see every app, a sandbox only
    /// its own.
    fn app(&self, app: &str) -> Result<&'a AppZone, Reply> {
        let z = self.zone.apps.get(app).ok_or_else(|| self.nxdomain())?;
        match self.caller {
            Some(own) if own != app => Err(Reply::new(ResponseCode::Refused)),
            _ => Ok(z),
        }
    }

    fn apex(&self) -> Reply {
        let mut r = Reply::new(ResponseCode::NoError);
        match self.qtype {
            RecordType::SOA => r.answers.push(self.soa()),
            RecordType::TXT => {
                let Some(z) = self.caller.and_then(|a| self.zone.apps.get(a)) else {
                    return self.nodata();
                };
                let names = z.services.keys().cloned().collect();
                r.answers.push(Record::from_rdata(
                    self.qname.clone(),
                    TTL,
                    RData::TXT(TXT::new(names)),
                ));
            }
            _ => return self.nodata(),
        }
        r
    }

    fn service(&self, _app: &str, z: &AppZone, svc: &str) -> Reply {
        let Some(instances) = z.services.get(svc) else {
            return self.nxdomain();
        };
        let mut r = Reply::new(ResponseCode::NoError);
        r.answers = addresses(self.qname, instances.iter(), self.qtype);
        if r.answers.is_empty() {
            return self.nodata();
        }
        r
    }

    fn srv(&self, app: &str, z: &AppZone, name: &str, proto: &str) -> Reply {
        let key = (
            name.trim_start_matches('_').to_string(),
            proto.trim_start_matches('_').to_string(),
        );
        let Some(ports) = name.strip_prefix('_').and_then(|_| z.ports.get(&key)) else {
            return self.nxdomain();
        };
        if !matches!(self.qtype, RecordType::SRV | RecordType::ANY) {
            return self.nodata();
        }
        let mut r = Reply::new(ResponseCode::NoError);
        let mut targets: Vec<(Name, &Instance)> = Vec::new();
        for p in ports {
            let instances = match &p.extra {
                None => z.services.get(&p.service),
                // An extra port with no serving instance yet: none.
                Some(extra) => z.extra.get(&(p.service.clone(), extra.clone())),
            };
            for inst in instances.map_or(&[][..], Vec::as_slice) {
                let Some(port) = inst.port else { continue };
                let target = target_name(inst.ip, &p.service, app);
                r.answers.push(Record::from_rdata(
                    self.qname.clone(),
                    TTL,
                    RData::SRV(SRV::new(0, 10, port, target.clone())),
                ));
                if !targets.iter().any(|(t, _)| *t == target) {
                    targets.push((target, inst));
                }
            }
        }
        for (name, inst) in targets {
            r.additionals
                .extend(addresses(&name, std::iter::once(inst), RecordType::ANY));
        }
        if r.answers.is_empty() {
            return self.nodata();
        }
        r
    }

    fn target(&self, z: &AppZone, svc: &str, label: &str) -> Reply {
        let found = z
            .services
            .get(svc)
            .and_then(|insts| insts.iter().find(|i| ip_label(i.ip) == label));
        let Some(inst) = found else {
            return self.nxdomain();
        };
        let mut r = Reply::new(ResponseCode::NoError);
        r.answers = addresses(self.qname, std::iter::once(inst), self.qtype);
        if r.answers.is_empty() {
            return self.nodata();
        }
        r
    }

    fn soa(&self) -> Record {
        Record::from_rdata(
            ORIGIN.clone(),
            TTL,
            RData::SOA(SOA::new(
                fqdn("ns.app.miren."),
                fqdn("hostmaster.app.miren."),
                self.zone.serial,
                3600,
                600,
                86400,
                TTL,
            )),
        )
    }

    fn nodata(&self) -> Reply {
        let mut r = Reply::new(ResponseCode::NoError);
        r.authority.push(self.soa());
        r
    }

    fn nxdomain(&self) -> Reply {
        let mut r = Reply::new(ResponseCode::NXDomain);
        r.authority.push(self.soa());
        r
    }
}

/// A and/or AAAA records of these instances, one per address.
fn addresses<'i>(
    name: &Name,
    instances: impl Iterator<Item = &'i Instance>,
    qtype: RecordType,
) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut last = None;
    for inst in instances {
        // Sorted: instances sharing an address (ports of one host) are adjacent.
        if last == Some(inst.ip) {
            continue;
        }
        last = Some(inst.ip);
        let rdata = match (inst.ip, qtype) {
            (IpAddr::V4(ip), RecordType::A | RecordType::ANY) => RData::A(A(ip)),
            (IpAddr::V6(ip), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(ip)),
            _ => continue,
        };
        out.push(Record::from_rdata(name.clone(), TTL, rdata));
    }
    out
}

/// `10-0-0-2` or `fd00--2`: an address as one DNS label.
pub fn ip_label(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The SRV target of an instance: `<ip>.<svc>.<app>.app.miren.`, resolvable by anyone
/// who may resolve the service.
fn target_name(ip: IpAddr, svc: &str, app: &str) -> Name {
    Name::from_ascii(format!("{}.{svc}.{app}.app.miren.", ip_label(ip)))
        .unwrap_or_else(|_| ORIGIN.clone())
}

#[cfg(test)]
mod tests;
