//! Which datagrams the answer cache may serve: one plain question about a name in
//! `app.miren.`, read from the wire without decoding it. Anything else — several
//! questions, records in a query, EDNS options, compression, odd flags or characters,
//! types the zone has no fast answer for — goes the whole way through hickory's parser
//! and the answer function, as every question does the first time.

/// The zone's two labels, last first.
const ORIGIN: [&[u8]; 2] = [b"miren", b"app"];

/// Types a client asks for in the zone: A, AAAA, SRV, TXT, SOA.
const TYPES: [u16; 5] = [1, 28, 33, 16, 6];

/// The largest query taken: what a client without EDNS may send.
const MAX_QUERY: usize = 512;

/// The OPT record's type (EDNS).
const OPT: u16 = 41;

/// Whether `packet` is a query the cache may answer: a standard query (`QR` = 0,
/// opcode QUERY, no `AA`/`TC`/`RA`/`Z`/RCODE bits; `RD`, `AD`, `CD` as the client
/// likes), exactly one question and no records but an EDNS OPT without options, the
/// question an `IN` A/AAAA/SRV/TXT/SOA of an uncompressed name of letters, digits,
/// `-` and `_` ending in `app.miren`, and nothing after it.
pub(crate) fn is_plain(packet: &[u8]) -> bool {
    let p = packet;
    if p.len() < 12 || p.len() > MAX_QUERY {
        return false;
    }
    // QR, opcode, AA, TC; then RA, Z and RCODE.
    if p[2] & 0xFE != 0 || p[3] & 0xCF != 0 {
        return false;
    }
    let count = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    let additional = count(10);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || additional > 1 {
        return false;
    }
    let Some((end, in_zone)) = name(p, 12) else {
        return false;
    };
    if !in_zone {
        return false;
    }
    let Some(q) = p.get(end..end + 4) else {
        return false;
    };
    let (qtype, qclass) = (
        u16::from_be_bytes([q[0], q[1]]),
        u16::from_be_bytes([q[2], q[3]]),
    );
    if qclass != 1 || !TYPES.contains(&qtype) {
        return false;
    }
    let mut at = end + 4;
    if additional == 1 {
        // Root name, OPT, payload size (any), extended RCODE 0, version 0, flags DO at
        // most, no options.
        let Some(o) = p.get(at..at + 11) else {
            return false;
        };
        let ok = o[0] == 0
            && u16::from_be_bytes([o[1], o[2]]) == OPT
            && o[5] == 0
            && o[6] == 0
            && o[7] & 0x7F == 0
            && o[8] == 0
            && o[9] == 0
            && o[10] == 0;
        if !ok {
            return false;
        }
        at += 11;
    }
    at == p.len()
}

/// Reads the name at `at`: where it ends, and whether it is in the zone; `None` when it
/// is not plain (a pointer, a label over 63 bytes, a name over 255, another byte).
fn name(p: &[u8], mut at: usize) -> Option<(usize, bool)> {
    // The last two labels seen, most recent first.
    let mut last: [&[u8]; 2] = [&[], &[]];
    let mut labels = 0usize;
    let start = at;
    loop {
        let len = usize::from(*p.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        let label = p.get(at + 1..at + 1 + len)?;
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return None;
        }
        last = [label, last[0]];
        labels += 1;
        at += 1 + len;
        if at - start > 254 {
            return None;
        }
    }
    let in_zone = labels >= 2
        && last[0].eq_ignore_ascii_case(ORIGIN[0])
        && last[1].eq_ignore_ascii_case(ORIGIN[1]);
    Some((at, in_zone))
}

#[cfg(test)]
mod tests {
    use super::is_plain;

    /// A query for `name` of `qtype`, `RD` set, with an OPT of `opt` bytes after it.
    fn query(name: &str, qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            u8::from(opt.is_some()),
        ];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        if let Some(o) = opt {
            p.extend_from_slice(o);
        }
        p
    }

    const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0];

    #[test]
    fn plain_questions_about_the_zone_are_taken() {
        assert!(is_plain(&query("web.app.miren", 1, None)));
        assert!(is_plain(&query("WEB.App.MIREN.", 28, None)));
        assert!(is_plain(&query("_web._tcp.shop.app.miren", 33, Some(&OPT))));
        assert!(is_plain(&query("app.miren", 16, None)), "the apex");
        assert!(is_plain(&query("10-0-0-2.web.shop.app.miren", 1, None)));
    }

    #[test]
    fn anything_unusual_is_left_to_the_full_parser() {
        let base = query("web.app.miren", 1, None);
        assert!(!is_plain(&query("example.com", 1, None)), "out of the zone");
        assert!(!is_plain(&query("miren", 1, None)));
        assert!(!is_plain(&query("web.xapp.miren", 1, None)));
        assert!(!is_plain(&query("web.app.miren.com", 1, None)));
        assert!(!is_plain(&query("web.app.miren", 255, None)), "ANY");
        assert!(!is_plain(&query("w b.app.miren", 1, None)), "a space");
        assert!(!is_plain(&query("wé.app.miren", 1, None)), "not ASCII");
        let mut p = base.clone();
        p[2] |= 0x80;
        assert!(!is_plain(&p), "a response");
        let mut p = base.clone();
        p[2] |= 0x28;
        assert!(!is_plain(&p), "an UPDATE");
        let mut p = base.clone();
        p[3] |= 0x40;
        assert!(!is_plain(&p), "the Z bit");
        let mut p = base.clone();
        p[5] = 2;
        assert!(!is_plain(&p), "two questions");
        let mut p = base.clone();
        p.push(0);
        assert!(!is_plain(&p), "a byte after the question");
        let mut p = base.clone();
        p.truncate(p.len() - 1);
        assert!(!is_plain(&p), "a cut question");
        let mut opt = OPT;
        opt[10] = 4;
        assert!(
            !is_plain(&query("web.app.miren", 1, Some(&opt))),
            "EDNS options"
        );
        let mut opt = OPT;
        opt[6] = 1;
        assert!(
            !is_plain(&query("web.app.miren", 1, Some(&opt))),
            "EDNS version 1"
        );
        // A compression pointer in the question.
        let mut p = base[..12].to_vec();
        p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert!(!is_plain(&p));
        assert!(!is_plain(&base[..11]), "shorter than a header");
        let long = format!("{}.app.miren", ["a"; 130].join("."));
        assert!(!is_plain(&query(&long, 1, None)), "a name over 255 bytes");
        assert!(!is_plain(&vec![0u8; 600]), "over 512 bytes");
    }
}
