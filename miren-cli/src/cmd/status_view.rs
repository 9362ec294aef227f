//! An app's status as people read it: `app status` prints it once, `top` redraws it
//! every second for every app.

use crate::api::{AppStatus, InstanceUsage, ServiceTraffic};
use crate::table::{duration_short, or_dash, render};

/// The head, the pools, the traffic and the instances of one app.
pub fn app(s: &AppStatus) -> String {
    let mut out = format!(
        "app:     {}\nversion: {} ({})\nstatus:  {}\n\n",
        s.app.name,
        s.app.number.map_or("-".into(), |n| format!("v{n}")),
        or_dash(s.app.version.as_deref()),
        s.app.status
    );
    let rows: Vec<Vec<String>> = s
        .pools
        .iter()
        .map(|p| {
            vec![
                p.service.clone(),
                p.id.to_string(),
                s.runtimes
                    .get(p.id.as_str())
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
                p.desired.to_string(),
                p.current.to_string(),
                p.ready.to_string(),
                p.quick_crashes.to_string(),
                if p.versions.is_empty() {
                    "draining".to_string()
                } else {
                    p.desired_reason.clone()
                },
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "SERVICE", "POOL", "RUNTIME", "DESIRED", "CURRENT", "READY", "CRASHES", "WHY",
        ],
        &rows,
    ));
    if !s.traffic.is_empty() {
        out.push('\n');
        out.push_str(&traffic(&s.traffic));
    }
    if !s.instances.is_empty() {
        out.push('\n');
        out.push_str(&instances(&s.instances));
    }
    if !s.decisions.is_empty() {
        out.push_str("\nscaling decisions, newest first:\n");
        for d in s.decisions.iter().take(5) {
            out.push_str(&format!(
                "  {:>8}  {} → {}: {}\n",
                crate::table::ago(d.at),
                d.service,
                d.desired,
                d.reason
            ));
        }
    }
    for (service, exit) in &s.last_exits {
        out.push_str(&format!("\nlast exit of {service}: {exit}\n"));
    }
    out
}

/// Per service: req/s, p95 and 5xx over the window.
pub fn traffic(t: &[ServiceTraffic]) -> String {
    let window = t.iter().map(|t| t.window_secs).fold(0.0, f64::max);
    let rows: Vec<Vec<String>> = t
        .iter()
        .map(|t| {
            vec![
                t.service.clone(),
                t.requests.to_string(),
                rate(t.req_per_sec),
                t.p95_ms.map_or("-".into(), millis),
                format!("{} ({:.1}%)", t.errors_5xx, t.error_rate * 100.0),
            ]
        })
        .collect();
    let head = format!("REQUESTS ({})", duration_short(window.round() as u64));
    render(&["SERVICE", &head, "REQ/S", "P95", "5XX"], &rows)
}

/// Per instance: status, CPU, memory, req/s, restarts; in a cluster, its node.
pub fn instances(i: &[InstanceUsage]) -> String {
    let clustered = i.iter().any(|u| u.node.is_some());
    let rows: Vec<Vec<String>> = i
        .iter()
        .map(|u| {
            let mut row = vec![u.sandbox.clone(), u.service.clone()];
            if clustered {
                row.push(or_dash(u.node.as_deref()));
            }
            row.extend([
                u.status.clone(),
                u.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%")),
                u.memory_bytes.map_or("-".into(), bytes),
                rate(u.req_per_sec),
                u.restarts.to_string(),
            ]);
            row
        })
        .collect();
    let mut headers = vec!["INSTANCE", "SERVICE"];
    if clustered {
        headers.push("NODE");
    }
    headers.extend(["STATUS", "CPU", "MEMORY", "REQ/S", "RESTARTS"]);
    render(&headers, &rows)
}

fn rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
        assert_eq!(millis(2.4), "2.4ms");
        assert_eq!(millis(1500.0), "1.50s");
        assert_eq!(rate(0.26), "0.3");
        assert_eq!(rate(1234.4), "1234");
    }
}
