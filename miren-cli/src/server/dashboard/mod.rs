//! The web dashboard (SPEC §16) on `--ui-addr`: one page, its script and its style,
//! embedded in the binary (nothing is fetched from elsewhere), over the very API the
//! CLI uses, mounted at `/api`. No page and no API answer without a session: a
//! session comes from a one-time code `miren dashboard` gets from the API and hands to
//! `/login` in a link. A change (a rollback) must carry a header a page of another
//! site cannot set without asking, so a session cookie alone changes nothing.
//!
//! Layout: `sessions` (codes and sessions), `assets/` (the page).

mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

pub use sessions::{CODE_TTL, Sessions};

/// The session cookie's name.
const COOKIE: &str = "miren_session";
/// The header every change must carry (the page's script sets it).
const CHANGE_HEADER: &str = "x-miren-ui";

/// Where the dashboard is and who may see it; the API hands out login links.
#[derive(Clone)]
pub struct Dashboard {
    pub sessions: Arc<Sessions>,
    /// Where browsers reach it.
    pub addr: SocketAddr,
}

impl Dashboard {
    /// A link that logs one browser in, once, within [`CODE_TTL`].
    pub fn login_link(&self) -> std::io::Result<String> {
        let code = self.sessions.code()?;
        // A wildcard address is reached on this machine at the loopback one.
        let mut at = self.addr;
        if at.ip().is_unspecified() {
            at.set_ip(match at {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Ok(format!("http://{at}/login?code={code}"))
    }
}

/// The dashboard's routes: the page, `/login`, and the API under `/api`.
pub fn router(api: Router, sessions: Arc<Sessions>) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", PAGE)))
        .route(
            "/dashboard.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/dashboard.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
        .nest("/api", api)
        .fallback(|| async { (StatusCode::NOT_FOUND, "No such page.\n") })
        .layer(middleware::from_fn_with_state(sessions.clone(), guard))
        // `/login` is the one way in without a session.
        .route(
            "/login",
            get(move |q: Query<LoginQuery>| login(sessions.clone(), q)),
        )
        .layer(middleware::from_fn(headers))
}

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

async fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

/// Trades the link's code for a session cookie, then goes to the page (so the code
/// does not stay in the address bar).
async fn login(sessions: Arc<Sessions>, Query(q): Query<LoginQuery>) -> Response {
    let Some(result) = q.code.as_deref().and_then(|c| sessions.login(c)) else {
        return (
            StatusCode::UNAUTHORIZED,
            "This login link was used already or has expired: run `miren dashboard` for another.\n",
        )
            .into_response();
    };
    match result {
        Ok(id) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (
                    header::SET_COOKIE,
                    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"),
                ),
            ],
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("making a dashboard session: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "no session could be made\n",
            )
                .into_response()
        }
    }
}

/// Lets through requests of a session only, and changes only with the page's header.
async fn guard(State(sessions): State<Arc<Sessions>>, req: Request, next: Next) -> Response {
    let session = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|id| sessions.valid(id));
    if !session {
        return (
            StatusCode::UNAUTHORIZED,
            "Log in with the link `miren dashboard` prints.\n",
        )
            .into_response();
    }
    // A browser says where a request comes from; one from another site's page (a
    // WebSocket, a form) is refused whatever cookie it carries.
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if let Some(origin) = origin
        && host.is_none_or(|h| origin.split_once("://").map(|(_, o)| o) != Some(h))
    {
        return (
            StatusCode::FORBIDDEN,
            "Requests come from the dashboard's page only.\n",
        )
            .into_response();
    }
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if !reads && !req.headers().contains_key(CHANGE_HEADER) {
        return (
            StatusCode::FORBIDDEN,
            "Changes come from the dashboard's page only.\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// What every answer says about itself: nothing cached, nothing from elsewhere, not
/// framed, and no link's code passed on as a referrer.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}
