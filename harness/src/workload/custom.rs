//! The clients of a system described by a file (`db::custom`): JSON lines over TCP to each
//! node's client port, or, when the file has a `[client]` table, through one client process
//! per worker on the controller, its command filled in for the worker and its node.

use crate::db::custom::Custom;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use workloads::client::BoxClient;
use workloads::jsonl::{ChildCommand, JsonlClient};

/// Where in the run directory each worker's client process's stderr goes.
pub const LOG_DIR: &str = "clients";

/// A system file's client processes, one per worker.
#[derive(Clone, Debug)]
pub struct StdioClients {
    /// The `[client]` command, placeholders unfilled.
    command: String,
    /// The system file's directory: `{dir}`, and where the command runs.
    dir: PathBuf,
    /// The run's directory for the workers' stderr logs.
    log_dir: PathBuf,
}

impl StdioClients {
    /// The client processes `system` asks for, logging into `run_dir`; None when its
    /// clients speak TCP.
    pub fn of(system: &Custom, run_dir: &Path) -> Option<StdioClients> {
        let table = system.file.client.as_ref()?;
        Some(StdioClients {
            command: table.command.clone(),
            dir: system.dir.clone(),
            log_dir: run_dir.join(LOG_DIR),
        })
    }

    /// Worker `worker`'s command, bound to the node at `addr` of `nodes`.
    pub fn command(&self, addr: SocketAddr, nodes: &[SocketAddr], worker: u32) -> ChildCommand {
        let id = nodes.iter().position(|n| *n == addr).map_or(0, |i| i + 1);
        let peers: Vec<String> = nodes.iter().map(SocketAddr::to_string).collect();
        let command = self
            .command
            .replace("{id}", &id.to_string())
            .replace("{ip}", &addr.ip().to_string())
            .replace("{client_port}", &addr.port().to_string())
            .replace("{nodes}", &nodes.len().to_string())
            .replace("{peers}", &peers.join(","))
            .replace("{worker}", &worker.to_string())
            .replace("{dir}", &self.dir.display().to_string());
        ChildCommand::new(command, &self.dir)
            .stderr_log(self.log_dir.join(format!("worker-{worker}.log")))
    }
}

/// The client for worker `worker`: through its process when `stdio` says so, else over TCP
/// to `addr`.
pub fn client(
    stdio: Option<&StdioClients>,
    addr: SocketAddr,
    nodes: &[SocketAddr],
    worker: u32,
    timeout_ms: u64,
) -> BoxClient {
    let w = u64::from(worker);
    BoxClient::new(match stdio {
        Some(s) => JsonlClient::child(s.command(addr, nodes, worker), w, timeout_ms),
        None => JsonlClient::tcp(addr, w, timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_filled_in_for_each_worker_and_its_node() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("sys.toml");
        let text = "name = \"s\"\nstart = \"x\"\nclient_port = 9\nworkloads = [\"register\"]\n\
                    [client]\ncommand = \"c {dir}/c.py {id} {ip}:{client_port} {nodes} {peers} \
                    {worker} {unknown}\"\n";
        std::fs::write(&file, text).unwrap();
        let system = Custom::load(&file).unwrap();
        let run = d.path().join("run");
        let clients = StdioClients::of(&system, &run).expect("a [client] table");
        let nodes: Vec<SocketAddr> = ["127.0.0.2:9", "127.0.0.3:9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let c = clients.command(nodes[1], &nodes, 5);
        let dir = system.dir.display();
        assert_eq!(
            c.command,
            format!("c {dir}/c.py 2 127.0.0.3:9 2 127.0.0.2:9,127.0.0.3:9 5 {{unknown}}")
        );
        assert_eq!(c.cwd, system.dir);
        assert_eq!(c.stderr_log, Some(run.join("clients/worker-5.log")));
        // Without the table, clients speak TCP.
        let tcp = d.path().join("tcp.toml");
        std::fs::write(&tcp, text.split("[client]").next().unwrap()).unwrap();
        assert!(StdioClients::of(&Custom::load(&tcp).unwrap(), &run).is_none());
    }
}
