//! Commands attached to a caller (`app run`, `sandbox exec`) through the Engine: an exec
//! in a running container, or a one-off container attached before it starts; both
//! stream the caller's input in and the output back until the command ends.

use std::pin::Pin;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    AttachContainerOptions, RemoveContainerOptions, ResizeContainerTTYOptions, WaitContainerOptions,
};
use futures_util::{Stream as FutStream, StreamExt};
use miren_core::model::SandboxId;
use miren_core::runtime::{Attach, Input, Output, RuntimeError, Stream, TermSize};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::engine::{self, failed, is_not_found};

type Out = Pin<Box<dyn FutStream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type In = Pin<Box<dyn AsyncWrite + Send>>;

/// `sandbox exec`: the command as an exec of the sandbox's container.
pub async fn exec(docker: &Docker, sandbox: &SandboxId, a: Attach) -> Result<i32, RuntimeError> {
    let tty = a.tty.is_some();
    let config = CreateExecOptions {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty),
        cmd: Some(a.argv.clone()),
        ..Default::default()
    };
    let created =
        docker
            .create_exec(sandbox.as_str(), config)
            .await
            .map_err(|e| match is_not_found(&e) {
                true => RuntimeError::NotFound(sandbox.clone()),
                false => failed(format!("running a command in {sandbox}"), e),
            })?;
    let start = StartExecOptions {
        detach: false,
        tty,
        output_capacity: None,
    };
    let StartExecResults::Attached { output, input } = docker
        .start_exec(&created.id, Some(start))
        .await
        .map_err(|e| failed(format!("running a command in {sandbox}"), e))?
    else {
        return Err(RuntimeError::Backend(
            "the Engine detached the command".into(),
        ));
    };
    let id = created.id.clone();
    let resize = |s: TermSize| {
        let (docker, id) = (docker.clone(), id.clone());
        async move {
            let size = ResizeExecOptions {
                height: s.rows,
                width: s.cols,
            };
            let _ = docker.resize_exec(&id, size).await;
        }
    };
    if let Some(s) = a.tty {
        resize(s).await;
    }
    let gone = pump(output, input, a.input, a.output, tty, resize).await;
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .map_err(|e| failed("reading the command's exit code", e))?;
    if gone && inspected.running == Some(true) {
        // The caller went away: the Engine has no call to stop an exec, so its
        // process (a host pid) is killed here.
        if let Some(pid) = inspected.pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    Ok(inspected
        .exit_code
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(137))
}

/// `app run`: a one-off container, attached before it starts, removed when it ends.
pub async fn one_off(
    docker: &Docker,
    name: &str,
    mut config: bollard::models::ContainerCreateBody,
    a: Attach,
) -> Result<i32, RuntimeError> {
    let tty = a.tty.is_some();
    config.entrypoint = Some(Vec::new());
    config.cmd = Some(a.argv.clone());
    config.tty = Some(tty);
    config.open_stdin = Some(true);
    config.stdin_once = Some(true);
    config.attach_stdin = Some(true);
    config.attach_stdout = Some(true);
    config.attach_stderr = Some(true);
    let create = bollard::query_parameters::CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    docker
        .create_container(Some(create), config)
        .await
        .map_err(|e| {
            RuntimeError::Start(format!(
                "creating the one-off container: {}",
                engine::message(&e)
            ))
        })?;
    let result = attached(docker, name, tty, a).await;
    let remove = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    let _ = docker.remove_container(name, Some(remove)).await;
    result
}

async fn attached(docker: &Docker, name: &str, tty: bool, a: Attach) -> Result<i32, RuntimeError> {
    let options = AttachContainerOptions {
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        logs: true,
        ..Default::default()
    };
    let att = docker
        .attach_container(name, Some(options))
        .await
        .map_err(|e| failed("attaching to the one-off container", e))?;
    docker.start_container(name, None).await.map_err(|e| {
        RuntimeError::Start(format!(
            "starting the one-off container: {}",
            engine::message(&e)
        ))
    })?;
    let resize = |s: TermSize| {
        let docker = docker.clone();
        let name = name.to_string();
        async move {
            let size = ResizeContainerTTYOptions {
                h: i32::from(s.rows),
                w: i32::from(s.cols),
            };
            let _ = docker.resize_container_tty(&name, size).await;
        }
    };
    if let Some(s) = a.tty {
        resize(s).await;
    }
    let gone = pump(att.output, att.input, a.input, a.output, tty, resize).await;
    if gone {
        // Removed (killed) by the caller of this function.
        return Ok(137);
    }
    let mut wait = docker.wait_container(name, None::<WaitContainerOptions>);
    let code = match wait.next().await {
        Some(Ok(r)) => r.status_code,
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(failed("waiting for the one-off container", e)),
        None => 1,
    };
    Ok(i32::try_from(code).unwrap_or(1))
}

/// Input in and output out until the output ends; true when the caller went away.
async fn pump<F, Fut>(
    mut output: Out,
    mut input: In,
    mut from: mpsc::Receiver<Input>,
    to: mpsc::Sender<Output>,
    tty: bool,
    resize: F,
) -> bool
where
    F: Fn(TermSize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut input_open = true;
    loop {
        tokio::select! {
            o = output.next() => {
                let Some(Ok(o)) = o else { return false };
                let (stream, data) = match o {
                    LogOutput::StdErr { message } => (Stream::Stderr, message),
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => (Stream::Stdout, message),
                };
                if to.send(Output { stream, data: data.to_vec() }).await.is_err() {
                    return true;
                }
            }
            i = from.recv(), if input_open => match i {
                Some(Input::Data(d)) => {
                    let _ = input.write_all(&d).await;
                    let _ = input.flush().await;
                }
                Some(Input::Eof) if tty => {
                    let _ = input.write_all(b"\x04").await;
                    let _ = input.flush().await;
                }
                Some(Input::Eof) => {
                    let _ = input.shutdown().await;
                    input_open = false;
                }
                Some(Input::Resize(s)) => resize(s).await,
                None => return true,
            },
        }
    }
}
