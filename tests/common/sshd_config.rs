//! The configuration of the test suites' own OpenSSH servers: key logins only, a host key
//! and an authorized client key from a temporary directory, SFTP built in, and room for the
//! many concurrent sessions the harness opens. Shared by `harness/tests/ssh_backend.rs`
//! and `tests/etcd_ssh.rs`.

use std::path::Path;

/// `listen` is sshd's `ListenAddress`; `host_keys` name key files inside `dir`.
pub fn sshd_config(dir: &Path, listen: &str, host_keys: &[&str]) -> String {
    let d = dir.display();
    let keys: String = host_keys
        .iter()
        .map(|k| format!("HostKey {d}/{k}\n"))
        .collect();
    format!(
        "ListenAddress {listen}\n\
         {keys}\
         AuthorizedKeysFile {d}/client.pub\n\
         PidFile none\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         Subsystem sftp internal-sftp\n\
         MaxStartups 64\n\
         MaxSessions 64\n\
         LogLevel VERBOSE\n"
    )
}
