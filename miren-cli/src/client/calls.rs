//! One typed method per API call (see [`crate::api`] for the routes): commands say
//! what they want, not which path and method it lives at.

use hyper::Method;
use miren_core::model::{Route, Sandbox, SandboxPool};

use super::{Client, ClientError};
use crate::api::{
    AddonCatalogRow, AddonCreate, AddonRow, AppStatus, AppSummary, ConfigVarRow, DashboardLogin,
    DeployBody, DeployLine, DesiredBody, EnvChange, RestartBody, RollbackBody, RouteBody, RunLine,
    SecretRow, SecretState, SecretValue, TaskRow, Uploaded, VersionRow,
};
use crate::server::logs::Stored;

/// Which logs to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery<'a> {
    /// An app's.
    pub app: Option<&'a str>,
    /// Of that app, one service's.
    pub service: Option<&'a str>,
    /// One sandbox's.
    pub sandbox: Option<&'a str>,
    /// Only as far back as this (`10m`).
    pub last: Option<&'a str>,
    /// Then new lines as they are written.
    pub follow: bool,
}

impl Client {
    /// Whether a server answers.
    pub async fn health(&self) -> Result<(), ClientError> {
        let _: serde_json::Value = self.get("/v1/health").await?;
        Ok(())
    }

    /// Uploads an app directory's tar archive, saying its digest: the server refuses
    /// content that arrived different.
    pub async fn upload(&self, tar: Vec<u8>) -> Result<Uploaded, ClientError> {
        let digest = miren_core::artifact::digest(&tar);
        let path = format!("/v1/artifacts?digest={digest}");
        let up: Uploaded = self.put_bytes(&path, tar).await?;
        if up.digest != digest {
            return Err(ClientError::Protocol(format!(
                "the server stored the upload as {}, not {digest}",
                up.digest
            )));
        }
        Ok(up)
    }

    /// Deploys, handing each progress line to `each` (false stops reading).
    pub async fn deploy(
        &self,
        body: &DeployBody,
        each: impl FnMut(DeployLine) -> bool,
    ) -> Result<(), ClientError> {
        self.stream(Method::POST, "/v1/deploys", Some(body), each)
            .await
    }

    /// Every app, as `app list` shows it.
    pub async fn apps(&self) -> Result<Vec<AppSummary>, ClientError> {
        self.get("/v1/apps").await
    }

    /// One app's status.
    pub async fn app_status(&self, app: &str) -> Result<AppStatus, ClientError> {
        self.get(&format!("/v1/apps/{}", q(app))).await
    }

    /// Every app's status at once, traffic and instances included.
    pub async fn statuses(&self) -> Result<Vec<AppStatus>, ClientError> {
        self.get("/v1/status").await
    }

    /// A one-time login link to the dashboard.
    pub async fn dashboard_login(&self) -> Result<DashboardLogin, ClientError> {
        self.call(Method::POST, "/v1/dashboard/logins", None::<&()>)
            .await
    }

    /// One app's versions, newest first.
    pub async fn history(&self, app: &str) -> Result<Vec<VersionRow>, ClientError> {
        self.get(&format!("/v1/apps/{}/versions", q(app))).await
    }

    /// Rolls back, handing each progress line to `each`.
    pub async fn rollback(
        &self,
        app: &str,
        body: &RollbackBody,
        each: impl FnMut(DeployLine) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/rollback", q(app));
        self.stream(Method::POST, &path, Some(body), each).await
    }

    /// An app's config vars (secrets as `(secret)`).
    pub async fn env(&self, app: &str) -> Result<Vec<ConfigVarRow>, ClientError> {
        self.get(&format!("/v1/apps/{}/env", q(app))).await
    }

    /// Changes config vars, handing each line of the rollout to `each`.
    pub async fn change_env(
        &self,
        app: &str,
        body: &EnvChange,
        each: impl FnMut(DeployLine) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/env", q(app));
        self.stream(Method::POST, &path, Some(body), each).await
    }

    /// The server's secrets (never a value).
    pub async fn secrets(&self) -> Result<Vec<SecretRow>, ClientError> {
        self.get("/v1/secrets").await
    }

    /// Sets a secret's value.
    pub async fn set_secret(
        &self,
        path: &str,
        value: String,
    ) -> Result<miren_core::controller::SecretSet, ClientError> {
        let body = SecretValue { value };
        self.call(
            Method::PUT,
            &format!("/v1/secrets/{}", q_path(path)),
            Some(&body),
        )
        .await
    }

    /// Destroys a secret, or one version (`path@version`).
    pub async fn destroy_secret(&self, secret: &str) -> Result<serde_json::Value, ClientError> {
        self.call::<(), _>(
            Method::DELETE,
            &format!("/v1/secrets/{}", q_path(secret)),
            None,
        )
        .await
    }

    /// Disables or enables a version (`path@version`).
    pub async fn enable_secret(
        &self,
        secret: &str,
        enabled: bool,
    ) -> Result<serde_json::Value, ClientError> {
        let body = SecretState {
            secret: secret.to_string(),
            enabled,
        };
        self.call(Method::POST, "/v1/secret-states", Some(&body))
            .await
    }

    /// The addon catalog.
    pub async fn addon_catalog(&self) -> Result<Vec<AddonCatalogRow>, ClientError> {
        self.get("/v1/addons").await
    }

    /// An app's addons.
    pub async fn addons(&self, app: &str) -> Result<Vec<AddonRow>, ClientError> {
        self.get(&format!("/v1/apps/{}/addons", q(app))).await
    }

    /// Provisions an addon, handing each line of the rollout to `each`.
    pub async fn create_addon(
        &self,
        app: &str,
        body: &AddonCreate,
        each: impl FnMut(DeployLine) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/addons", q(app));
        self.stream(Method::POST, &path, Some(body), each).await
    }

    /// Destroys an addon, handing each line of the rollout to `each`.
    pub async fn destroy_addon(
        &self,
        app: &str,
        addon: &str,
        each: impl FnMut(DeployLine) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/addons/{}", q(app), q(addon));
        self.stream::<(), _>(Method::DELETE, &path, None, each)
            .await
    }

    /// Restarts services, handing each line of the rollout to `each`.
    pub async fn restart(
        &self,
        app: &str,
        body: &RestartBody,
        each: impl FnMut(DeployLine) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/restart", q(app));
        self.stream(Method::POST, &path, Some(body), each).await
    }

    /// Deletes an app (its disks too with `purge_disks`).
    pub async fn delete_app(&self, app: &str, purge_disks: bool) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}?purge_disks={purge_disks}", q(app));
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// Pools, of one app or all.
    pub async fn pools(&self, app: Option<&str>) -> Result<Vec<SandboxPool>, ClientError> {
        self.get(&with_query("/v1/pools", &[("app", app)])).await
    }

    /// Sets a pool's desired count.
    pub async fn set_desired(
        &self,
        pool: &str,
        desired: u32,
        force: bool,
    ) -> Result<SandboxPool, ClientError> {
        let path = format!("/v1/pools/{}/desired", q(pool));
        self.call(Method::PUT, &path, Some(&DesiredBody { desired, force }))
            .await
    }

    /// Sandboxes, of one app or all, of one status or any.
    pub async fn sandboxes(
        &self,
        app: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<Sandbox>, ClientError> {
        let path = with_query("/v1/sandboxes", &[("app", app), ("status", status)]);
        self.get(&path).await
    }

    /// Stops one sandbox.
    /// Stops a sandbox named by its id or a unique part of it; its whole id.
    pub async fn stop_sandbox(&self, id: &str) -> Result<String, ClientError> {
        let path = format!("/v1/sandboxes/{}/stop", q(id));
        let v: serde_json::Value = self.call::<(), _>(Method::POST, &path, None).await?;
        Ok(v["stopped"].as_str().unwrap_or(id).to_string())
    }

    /// Reads logs, handing each line to `each` (false stops reading).
    pub async fn logs(
        &self,
        query: &LogQuery<'_>,
        each: impl FnMut(Stored) -> bool,
    ) -> Result<(), ClientError> {
        let path = with_query(
            "/v1/logs",
            &[
                ("app", query.app),
                ("service", query.service),
                ("sandbox", query.sandbox),
                ("last", query.last),
                ("follow", query.follow.then_some("true")),
            ],
        );
        self.stream::<(), Stored>(Method::GET, &path, None, each)
            .await
    }

    /// A cluster node's own lines (`path` carries the query), handing each to `each`.
    pub async fn node_logs(
        &self,
        path: &str,
        each: impl FnMut(Stored) -> bool,
    ) -> Result<(), ClientError> {
        self.stream::<(), Stored>(Method::GET, path, None, each)
            .await
    }

    /// A cluster node's sandboxes' usage.
    pub async fn node_usage(
        &self,
        path: &str,
    ) -> Result<Vec<miren_core::runtime::Usage>, ClientError> {
        self.get(path).await
    }

    /// The tasks of an app's active version.
    pub async fn tasks(&self, app: &str) -> Result<Vec<TaskRow>, ClientError> {
        self.get(&format!("/v1/apps/{}/tasks", q(app))).await
    }

    /// Starts a run of `task` and follows it to its end, handing each line to `each`.
    pub async fn run_task(
        &self,
        app: &str,
        task: &str,
        each: impl FnMut(RunLine) -> bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{}/tasks/{}/runs?follow=true", q(app), q(task));
        self.stream::<(), RunLine>(Method::POST, &path, None, each)
            .await
    }

    /// Starts a run of `task` and returns at once.
    pub async fn start_task(
        &self,
        app: &str,
        task: &str,
    ) -> Result<miren_core::model::TaskRun, ClientError> {
        let path = format!("/v1/apps/{}/tasks/{}/runs", q(app), q(task));
        self.call::<(), _>(Method::POST, &path, None).await
    }

    /// An app's task runs (of one task), newest first.
    pub async fn task_runs(
        &self,
        app: &str,
        task: Option<&str>,
    ) -> Result<Vec<miren_core::model::TaskRun>, ClientError> {
        let path = with_query(&format!("/v1/apps/{}/runs", q(app)), &[("task", task)]);
        self.get(&path).await
    }

    /// Every route.
    pub async fn routes(&self) -> Result<Vec<Route>, ClientError> {
        self.get("/v1/routes").await
    }

    /// The cluster's nodes.
    pub async fn nodes(&self) -> Result<Vec<crate::api::NodeStatus>, ClientError> {
        self.get("/v1/nodes").await
    }

    /// Drains a node (returns once its sandboxes moved).
    pub async fn drain(&self, node: &str) -> Result<crate::api::DrainReport, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/nodes/{}/drain", q(node)),
            None::<&()>,
        )
        .await
    }

    /// Undrains a node.
    pub async fn undrain(&self, node: &str) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/v1/nodes/{}/drain", q(node)),
            None::<&()>,
        )
        .await
    }

    /// Routes `host` to an app.
    pub async fn put_route(&self, host: &str, body: &RouteBody) -> Result<Route, ClientError> {
        let path = format!("/v1/routes/{}", q(host));
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// Removes the route of `host`.
    pub async fn remove_route(&self, host: &str) -> Result<(), ClientError> {
        let path = format!("/v1/routes/{}", q(host));
        let _: serde_json::Value = self.call::<(), _>(Method::DELETE, &path, None).await?;
        Ok(())
    }
}

/// `path?k=v&…` with the values given, percent-encoded.
pub(crate) fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", q(v))))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn q(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A path whose `/` stay (a secret's path in a URL); every other byte as [`q`].
fn q_path(v: &str) -> String {
    v.split('/').map(q).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_carry_only_the_values_given_encoded() {
        assert_eq!(
            super::with_query("/v1/pools", &[("app", None)]),
            "/v1/pools"
        );
        assert_eq!(
            super::with_query(
                "/v1/sandboxes",
                &[("app", Some("shop")), ("status", Some("a b&c"))]
            ),
            "/v1/sandboxes?app=shop&status=a%20b%26c"
        );
    }
}
