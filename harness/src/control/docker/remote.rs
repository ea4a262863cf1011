//! [`Remote`] for containers: `docker exec` for commands, `docker cp` for files.
//!
//! A command runs through a small wrapper shell inside the container that answers what
//! `docker exec` alone cannot:
//! - *Did the command start at all?* The wrapper prints one marker byte before anything else,
//!   so a failure of docker itself (container gone, engine down) is an error, never a
//!   command's output and exit status.
//! - *Which processes to kill on timeout?* Killing the `docker exec` client leaves the command
//!   running inside. The command runs under `setsid`, leading its own process group, and
//!   writes its pid to a file; on timeout a second exec kills that group.
//! - *Exit code or signal?* docker reports death by signal N as exit code 128+N. The command's
//!   shell records its exit status in a file from an EXIT trap, which runs on `exit` but not
//!   when a signal kills the shell; a status above 128 with no record is a signal. (A script
//!   that replaces the trap or `exec`s another program loses the record, so its exits above
//!   128 read as signals.)

use super::super::{Cmd, ControlError, Node, Output, Remote, MAX_OUTPUT_BYTES};
use super::process::{self, Waited};
use super::{cli, unique_suffix, Docker, NODE_ROOT};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where the wrapper keeps per-command pid and status files (outside every node directory).
const EXEC_STATE_DIR: &str = "/faultline/.exec";

/// The byte the wrapper writes first, once it has entered the node's directory.
const STARTED_MARKER: u8 = b'+';

/// How long the timeout kill waits for a just-started command to write its pid (polled every
/// 10 ms).
const KILL_PID_WAIT_MS: u32 = 1000;

/// Bounds the helper execs (kill, status read, mkdir) that follow a command.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// `sh -c WRAPPER wrapper <node dir> <command script> <state file prefix>`.
///
/// The command's stderr is moved to fd 4 around it and restored inside it (its script starts
/// with `exec 2>&4 4>&-`): busybox sh prints "Killed" on its own stderr when a child dies of
/// a signal, and that message must not reach the command's stderr.
const WRAPPER: &str = r#"mkdir -p "$1" "${3%/*}" && cd "$1" || exit 1
printf +
{ setsid sh -c "$2"; } 4>&2 2>/dev/null
s=$?
rm -f "$3.pid"
[ "$s" -gt 128 ] || rm -f "$3.status"
exit "$s""#;

/// The command's own shell: restores stderr, records its pid for the timeout kill and its
/// exit status for telling exits from signals, then runs the caller's script.
fn command_script(script: &str, state: &str) -> String {
    format!("exec 2>&4 4>&-; echo $$ > {state}.pid; trap 'echo $? > {state}.status' EXIT\n{script}")
}

/// Kills the command's process group, waiting briefly for it to have written its pid.
fn kill_script(state: &str) -> String {
    let polls = KILL_PID_WAIT_MS / 10;
    format!(
        "i=0; while [ ! -s {state}.pid ] && [ $i -lt {polls} ]; do sleep 0.01; i=$((i+1)); done; \
         p=$(cat {state}.pid 2>/dev/null) && kill -KILL -\"$p\"; rm -f {state}.pid {state}.status"
    )
}

impl Remote for Docker {
    fn exec(&self, node: &Node, cmd: &Cmd) -> Result<Output, ControlError> {
        let container = self.container_for(node, &cmd.script)?;
        let state = format!("{EXEC_STATE_DIR}/{}", unique_suffix());
        let exec_err = |cause: String| ControlError::Exec {
            node: node.name.clone(),
            script: cmd.script.clone(),
            cause,
        };
        let kill = || {
            let _ = cli::run_with_timeout(
                &["exec", container, "sh", "-c", &kill_script(&state)],
                HELPER_TIMEOUT,
            );
        };
        // One byte more than the cap: the marker is not output.
        let docker = exec_command(container, node, &cmd.script, &state);
        let waited = process::run(
            docker,
            cmd.stdin.clone(),
            cmd.timeout,
            MAX_OUTPUT_BYTES + 1,
            kill,
        )
        .map_err(|e| exec_err(format!("cannot run docker: {e}")))?;
        let Waited::Finished(finished) = waited else {
            return Err(ControlError::Timeout {
                node: node.name.clone(),
                script: cmd.script.clone(),
                timeout: cmd.timeout,
            });
        };
        let Some(stdout) = finished.stdout.strip_prefix(&[STARTED_MARKER]) else {
            return Err(exec_err(format!(
                "docker exec in {container} failed ({}): {}",
                finished.status,
                String::from_utf8_lossy(&finished.stderr).trim()
            )));
        };
        let code = finished
            .status
            .code()
            .ok_or_else(|| exec_err(format!("the docker client died: {}", finished.status)))?;
        Ok(Output {
            status: exit_or_signal(container, code, &state),
            stdout: stdout.to_vec(),
            stderr: finished.stderr.into_iter().take(MAX_OUTPUT_BYTES).collect(),
        })
    }

    fn upload(&self, node: &Node, local: &Path, remote: &Path) -> Result<(), ControlError> {
        let target = container_path(node, remote, "upload to")?;
        let file_err = file_error(node, "upload to", remote);
        if !local.is_file() {
            return Err(file_err(format!(
                "{} is not a readable file",
                local.display()
            )));
        }
        let container = self.file_container(node, &file_err)?;
        let parent = target.rsplit_once('/').map_or(NODE_ROOT, |(dir, _)| dir);
        cli::run(&["exec", container, "mkdir", "-p", parent])
            .map_err(|e| file_err(e.to_string()))?;
        // docker cp keeps the file's mode: an uploaded binary stays executable.
        let source = local.display().to_string();
        cli::run(&["cp", &source, &format!("{container}:{target}")])
            .map(|_| ())
            .map_err(|e| file_err(e.to_string()))
    }

    fn download(&self, node: &Node, remote: &Path, local: &Path) -> Result<(), ControlError> {
        let source = container_path(node, remote, "download")?;
        let file_err = file_error(node, "download", remote);
        let container = self.file_container(node, &file_err)?;
        if let Some(parent) = local.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| file_err(e.to_string()))?;
        }
        // Into a fresh name first: `docker cp` copies directories too, and a failed copy
        // must not leave half a file where the caller expects the old or the new one.
        let partial = partial_path(local);
        let copied = cli::run(&[
            "cp",
            "-L",
            &format!("{container}:{source}"),
            &partial.display().to_string(),
        ])
        .map_err(|e| file_err(e.to_string()))
        .and_then(|_| {
            if partial.is_file() {
                Ok(())
            } else {
                Err(file_err("not a regular file".into()))
            }
        })
        .and_then(|()| std::fs::rename(&partial, local).map_err(|e| file_err(e.to_string())));
        if copied.is_err() {
            let _ = std::fs::remove_dir_all(&partial);
            let _ = std::fs::remove_file(&partial);
        }
        copied
    }
}

/// `docker exec` of the wrapper, with the node's name and address in the environment as the
/// local backend sets them.
fn exec_command(container: &str, node: &Node, script: &str, state: &str) -> Command {
    let mut docker = cli::command();
    docker
        .args(["exec", "-i", "-e"])
        .arg(format!("FAULTLINE_NODE={}", node.name))
        .arg("-e")
        .arg(format!("FAULTLINE_NODE_IP={}", node.ip))
        .args([container, "sh", "-c", WRAPPER, "faultline-exec"])
        .arg(node_dir(node))
        .arg(command_script(script, state))
        .arg(state);
    docker
}

impl Docker {
    fn file_container(
        &self,
        node: &Node,
        file_err: &impl Fn(String) -> ControlError,
    ) -> Result<&str, ControlError> {
        self.container_name(node)
            .ok_or_else(|| file_err("no such node in this Docker cluster".into()))
    }
}

/// The command's status: exits up to 128 are plain; above, the EXIT trap's record says
/// whether it was an exit (recorded) or a signal (none). Unreadable record: a signal, the
/// usual reason for such codes.
fn exit_or_signal(container: &str, code: i32, state: &str) -> Option<i32> {
    if code <= 128 {
        return Some(code);
    }
    let read = format!("cat {state}.status 2>/dev/null; rm -f {state}.status");
    cli::run_with_timeout(&["exec", container, "sh", "-c", &read], HELPER_TIMEOUT)
        .ok()
        .and_then(|recorded| recorded.trim().parse().ok())
        .filter(|&recorded| recorded == code)
}

/// The node's working directory inside its container.
fn node_dir(node: &Node) -> String {
    format!("{NODE_ROOT}/{}", node.name)
}

/// `remote` inside the container, under the node's directory. As in every backend, paths are
/// relative to it, and absolute paths or `..` are refused.
fn container_path(
    node: &Node,
    remote: &Path,
    action: &'static str,
) -> Result<String, ControlError> {
    let plain = remote
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let text = remote
        .to_str()
        .filter(|_| plain && !remote.as_os_str().is_empty());
    let Some(text) = text else {
        return Err(file_error(node, action, remote)(
            "remote paths are relative to the node's directory, without ..".into(),
        ));
    };
    let relative: PathBuf = Path::new(text).components().collect();
    Ok(format!("{}/{}", node_dir(node), relative.display()))
}

fn file_error<'a>(
    node: &'a Node,
    action: &'static str,
    remote: &'a Path,
) -> impl Fn(String) -> ControlError + 'a {
    move |cause| ControlError::File {
        node: node.name.clone(),
        action,
        path: remote.display().to_string(),
        cause,
    }
}

fn partial_path(local: &Path) -> PathBuf {
    let mut name = local.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".faultline-partial-{}", unique_suffix()));
    local.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n1() -> Node {
        Node {
            name: "n1".into(),
            ip: "10.0.0.1".into(),
        }
    }

    #[test]
    fn remote_paths_stay_in_the_node_directory() {
        assert_eq!(
            container_path(&n1(), Path::new("data/./x.bin"), "download").unwrap(),
            "/faultline/n1/data/x.bin"
        );
        for bad in ["../x", "/etc/passwd", "", "a/../../b"] {
            assert!(
                container_path(&n1(), Path::new(bad), "download").is_err(),
                "{bad}"
            );
        }
    }
}
