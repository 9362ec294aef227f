//! Every default of SPEC §2 in one place, so the resolver, the rules and the docs
//! agree.

use std::time::Duration;

use super::app_config::Mode;

/// The service that receives outside HTTP traffic.
pub const WEB: &str = "web";
/// `port` of `web` when not set.
pub const WEB_PORT: u16 = 3000;
/// `num_instances` in fixed mode.
pub const NUM_INSTANCES: u32 = 1;
/// `requests_per_instance` in auto mode.
pub const REQUESTS_PER_INSTANCE: u32 = 10;
/// `scale_down_delay` in auto mode.
pub const SCALE_DOWN_DELAY: Duration = Duration::from_secs(15 * 60);
/// `min_instances` in auto mode: scale to zero.
pub const MIN_INSTANCES: u32 = 0;
/// `max_instances` in auto mode.
pub const MAX_INSTANCES: u32 = 20;
/// `build.dockerfile`.
pub const DOCKERFILE: &str = "Dockerfile";
/// `port_timeout` (SPEC §14).
pub const PORT_TIMEOUT: Duration = Duration::from_secs(30);
/// `concurrency.shutdown_timeout` (SPEC §14).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// `health.interval`.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// `health.timeout`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// A task's `timeout`.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// `health.unhealthy_after`.
pub const UNHEALTHY_AFTER: u32 = 3;

/// The mode of a service that doesn't set one: `web` autoscales, the rest are fixed.
pub fn mode(service: &str) -> Mode {
    if service == WEB {
        Mode::Auto
    } else {
        Mode::Fixed
    }
}

/// The port of a service that doesn't set one.
pub fn port(service: &str) -> Option<u16> {
    (service == WEB).then_some(WEB_PORT)
}

/// The port `PORT` names for `svc` as written (`port`, or the primary of `ports`),
/// else the service's default (3000 for `web`).
pub fn declared_port(name: &str, svc: &super::app_config::ServiceConfig) -> Option<u16> {
    svc.port
        .or_else(|| svc.primary_port().map(|p| p.port))
        .or_else(|| svc.ports.is_empty().then(|| port(name)).flatten())
}
