//! Protected creates: sequential nodes that their creator can find again after a lost
//! answer.
//!
//! A create whose connection breaks may or may not have been applied, and a sequential
//! create cannot simply be repeated: a second node would queue behind the first, which
//! nobody owns in the recipe's eyes and which would block everyone after it until the
//! session ends. So the name carries a GUID (the session id and a nonce): `x-<guid>-`
//! becomes `x-<guid>-0000000042`. After a loss the creator syncs, lists the directory and
//! takes the node with its GUID if there is one; only if there is none does it create
//! again, with the same GUID. If a late-applied create still makes a duplicate, the
//! lowest is kept and the others deleted, now or when the node is withdrawn.

use super::{retrying, RecipeError, Result};
use crate::coord::client::CoordClient;
use coord::api::{child_path, Acl, CreateFlags, ErrorCode, Stat};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// Digits of the sequence suffix the server appends.
const SEQUENCE_DIGITS: usize = 10;

/// A node a protected create made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub path: String,
    /// The name under the directory: `<prefix><guid>-<sequence>`.
    pub name: String,
    /// `<prefix><guid>-`: what every node of this create starts with.
    pub base: String,
    pub stat: Stat,
}

impl Created {
    /// The sequence number the server gave the node.
    pub fn sequence(&self) -> u64 {
        sequence(&self.name).expect("a sequential node's name")
    }
}

/// The sequence number ending a sequential node's name, if it has one.
pub fn sequence(name: &str) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(SEQUENCE_DIGITS)?..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A GUID unique per create: the session (unique in the cluster) and a process-wide
/// counter (unique within the session).
fn guid(session: u64) -> String {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
    format!("{session:016x}{nonce:08x}")
}

/// Creates `dir/<prefix><guid>-<sequence>` with `flags` (sequential is implied), finding
/// it again if an answer is lost. `prefix` must not contain `/`.
pub async fn create(
    client: &CoordClient,
    dir: &str,
    prefix: &str,
    data: &[u8],
    ephemeral: bool,
    deadline: Instant,
) -> Result<Created> {
    let base = format!("{prefix}{}-", guid(client.session_id()));
    let path = child_path(dir, &base);
    let flags = CreateFlags::new(ephemeral, true);
    loop {
        match client.create(&path, data, &Acl::open(), flags).await {
            Ok((path, stat)) => {
                let name = coord::api::node_name(&path).to_string();
                return Ok(Created {
                    path,
                    name,
                    base,
                    stat,
                });
            }
            Err(e) if e.is_transient() => {
                // The create may have been applied: if it cannot be looked for, its node may
                // sit in the queue for as long as the session lives, and the caller must
                // know to end the session.
                let found = find(client, dir, &base, deadline).await.map_err(|w| {
                    RecipeError::Stranded {
                        gave_up: e.to_string(),
                        path: path.clone(),
                        why: w.to_string(),
                    }
                })?;
                if let Some(found) = found {
                    return Ok(found);
                }
                if Instant::now() >= deadline {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Finds the node of a protected create by its base name, deleting duplicates.
pub async fn find(
    client: &CoordClient,
    dir: &str,
    base: &str,
    deadline: Instant,
) -> Result<Option<Created>> {
    // A sync first, so that a create applied through the lost connection is visible here.
    retrying(deadline, || client.sync(dir)).await?;
    let (children, _) = retrying(deadline, || client.get_children(dir)).await?;
    let mut mine: Vec<&String> = children.iter().filter(|n| n.starts_with(base)).collect();
    mine.sort_by_key(|n| sequence(n));
    let Some(first) = mine.first() else {
        return Ok(None);
    };
    for extra in &mine[1..] {
        delete_own(client, &child_path(dir, extra), deadline).await?;
    }
    let path = child_path(dir, first);
    match retrying(deadline, || client.exists(&path)).await? {
        Some(stat) => Ok(Some(Created {
            path,
            name: first.to_string(),
            base: base.to_string(),
            stat,
        })),
        None => Ok(None),
    }
}

/// Deletes a node of one's own, whatever its version; `NoNode` (already gone, perhaps by
/// an earlier attempt whose answer was lost) counts as done.
pub async fn delete_own(client: &CoordClient, path: &str, deadline: Instant) -> Result<()> {
    let deleted = retrying(deadline, || async {
        match client.delete(path, -1).await {
            Err(e) if e.code() == ErrorCode::NoNode => Ok(()),
            other => other,
        }
    });
    deleted.await.map_err(RecipeError::from)
}

/// Deletes a protected create's node and any duplicate of it.
pub async fn withdraw(
    client: &CoordClient,
    dir: &str,
    node: &Created,
    deadline: Instant,
) -> Result<()> {
    delete_own(client, &node.path, deadline).await?;
    // A duplicate would sit in the queue forever (until the session ends): sweep them.
    let (children, _) = retrying(deadline, || client.get_children(dir)).await?;
    for extra in children.iter().filter(|n| n.starts_with(&node.base)) {
        delete_own(client, &child_path(dir, extra), deadline).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_read_from_the_last_ten_digits() {
        assert_eq!(sequence("x-00000000000000ab00000001-0000000042"), Some(42));
        assert_eq!(sequence("ready"), None);
        assert_eq!(sequence("x-abc-00000000z1"), None);
        let (a, b) = (guid(7), guid(7));
        assert_ne!(a, b, "a nonce per create");
        assert!(a.starts_with("0000000000000007"));
    }
}
