//! Access control as ZooKeeper does it: per-node ACLs, checked against the identities a
//! connection has authenticated as.
//!
//! - An ACL is a list of (permissions, identity). Access is granted when any entry that
//!   holds the permission asked for names `world:anyone` or one of the caller's identities.
//!   ACLs are not inherited: each node has its own, and CREATE and DELETE are checked on
//!   the parent.
//! - Identities come from `addAuth(scheme, credential)`. Auth is per connection and never
//!   replicated: ZooKeeper's client re-sends it after reconnecting. This module only turns
//!   a credential into identities; the server keeps them with the connection.
//! - The `digest` scheme names a user as `user:base64(sha1("user:password"))`, so that an
//!   ACL can be written without knowing the password, and `addAuth("digest",
//!   "user:password")` proves it.
//! - In an ACL given to create or setACL, the pseudo-scheme `auth` stands for all of the
//!   caller's identities (ZooKeeper's `fixupACL`).
//! - A `super` identity (from a configured super digest) passes every check, as
//!   ZooKeeper's `DigestAuthenticationProvider.superDigest` does.

use super::sha1::sha1;
use crate::api::{Acl, ErrorCode, Id, Perms, MAX_ACL_ENTRIES, MAX_ID_BYTES};

/// The scheme of identities that pass every ACL check.
pub const SUPER_SCHEME: &str = "super";

/// ZooKeeper's digest of a `user:password` credential: `user:base64(sha1(credential))`.
/// The hash covers the whole credential, user name included.
pub fn digest_id(credential: &str) -> String {
    let user = credential.split(':').next().unwrap_or("");
    format!("{user}:{}", base64(&sha1(credential.as_bytes())))
}

/// The identities `addAuth(scheme, credential)` gives a connection, or `AuthFailed`.
///
/// Only `digest` is an authentication scheme (`world` is for ACLs only; ZooKeeper's `ip`,
/// `sasl` and `x509` are not implemented). `super_digest`, when configured, is a digest id
/// (`super:base64hash`); a credential that hashes to it also gets the super identity.
pub fn authenticate(
    scheme: &str,
    credential: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    if scheme != "digest" || credential.len() > MAX_ID_BYTES {
        return Err(ErrorCode::AuthFailed);
    }
    let credential = std::str::from_utf8(credential).map_err(|_| ErrorCode::AuthFailed)?;
    // ZooKeeper accepts a credential without a colon and hashes it anyway; such an id could
    // never be named in an ACL, so we refuse it.
    if !credential.contains(':') {
        return Err(ErrorCode::AuthFailed);
    }
    let id = Id::new("digest", &digest_id(credential));
    let mut ids = vec![id.clone()];
    if super_digest == Some(id.id.as_str()) {
        ids.push(Id::new(SUPER_SCHEME, ""));
    }
    Ok(ids)
}

/// Validates and normalizes an ACL given to create or setACL, as ZooKeeper's `fixupACL`:
/// duplicates dropped, `auth` expanded to the caller's identities, every entry well formed.
/// An empty ACL, an unknown scheme, a malformed id, unknown permission bits, or `auth` from
/// a caller with no identity give `InvalidAcl`.
pub fn fix_acl(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut fixed: Vec<Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        for expanded in expand_entry(entry, auth)? {
            if !fixed.contains(&expanded) {
                fixed.push(expanded);
            }
        }
    }
    if fixed.is_empty() || fixed.len() > MAX_ACL_ENTRIES {
        return Err(ErrorCode::InvalidAcl);
    }
    Ok(fixed)
}

fn expand_entry(entry: &Acl, auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if !entry.perms.is_valid() || !id_fits(&entry.id) {
        return Err(ErrorCode::InvalidAcl);
    }
    match entry.id.scheme.as_str() {
        "world" if entry.id.id == "anyone" => Ok(vec![entry.clone()]),
        "digest" if is_digest_id(&entry.id.id) => Ok(vec![entry.clone()]),
        "auth" => expand_auth(entry.perms, auth),
        _ => Err(ErrorCode::InvalidAcl),
    }
}

fn expand_auth(perms: Perms, auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    // The super identity is not an authentication scheme of its own, so, as in ZooKeeper,
    // it is not written into ACLs.
    let ids: Vec<Acl> = auth
        .iter()
        .filter(|id| id.scheme != SUPER_SCHEME)
        .map(|id| Acl::new(perms, id.clone()))
        .collect();
    if ids.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    Ok(ids)
}

fn id_fits(id: &Id) -> bool {
    id.scheme.len() <= MAX_ID_BYTES && id.id.len() <= MAX_ID_BYTES
}

/// A digest id is `user:hash` with exactly one colon (ZooKeeper's
/// `DigestAuthenticationProvider.isValid`).
fn is_digest_id(id: &str) -> bool {
    id.split(':').count() == 2
}

/// Whether `auth` may do `perm` on a node with `acl` (ZooKeeper's `checkACL`). `perm` may
/// hold several bits; any one granted suffices.
pub fn check(acl: &[Acl], auth: &[Id], perm: Perms) -> Result<(), ErrorCode> {
    if auth.iter().any(|id| id.scheme == SUPER_SCHEME) {
        return Ok(());
    }
    let granted = acl
        .iter()
        .filter(|entry| entry.perms.intersects(perm))
        .any(|entry| entry.id == Id::anyone() || auth.contains(&entry.id));
    if granted {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

/// The ACL as getACL shows it to `auth`: whole to an admin, otherwise with digest hashes
/// replaced by `x`, as ZooKeeper 3.6+ does so that readers cannot brute-force passwords.
pub fn redact(acl: &[Acl], auth: &[Id]) -> Vec<Acl> {
    if check(acl, auth, Perms::ADMIN).is_ok() {
        return acl.to_vec();
    }
    acl.iter().map(redact_entry).collect()
}

fn redact_entry(entry: &Acl) -> Acl {
    if entry.id.scheme != "digest" {
        return entry.clone();
    }
    let user = entry.id.id.split(':').next().unwrap_or("");
    Acl::new(entry.perms, Id::new("digest", &format!("{user}:x")))
}

/// The size an ACL adds to a node, for the tree's byte limit.
pub(crate) fn acl_bytes(acl: &[Acl]) -> u64 {
    acl.iter()
        .map(|e| (e.id.scheme.len() + e.id.id.len() + 8) as u64)
        .sum()
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64 (RFC 4648 §4), as ZooKeeper's `base64Encode` writes digests.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(BASE64_ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_zookeepers() {
        // Values from ZooKeeper deployments' superDigest settings, as printed by
        // `DigestAuthenticationProvider.generateDigest` (and `openssl dgst -sha1 | base64`).
        assert_eq!(
            digest_id("super:superpw"),
            "super:g9oN2HttPfn8MMWJZ2r45Np/LIA="
        );
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn base64_pads_as_rfc_4648() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn digest_auth_gives_the_id_acls_name() {
        let ids = authenticate("digest", b"super:superpw", None).unwrap();
        assert_eq!(
            ids,
            vec![Id::new("digest", "super:g9oN2HttPfn8MMWJZ2r45Np/LIA=")]
        );
        for (scheme, cred) in [
            ("digest", &b"nocolon"[..]),
            ("world", b"anyone"),
            ("ip", b"1"),
        ] {
            assert_eq!(authenticate(scheme, cred, None), Err(ErrorCode::AuthFailed));
        }
        assert_eq!(
            authenticate("digest", &[0xff, b':'], None),
            Err(ErrorCode::AuthFailed)
        );
    }

    #[test]
    fn the_super_digest_passes_every_check() {
        let super_digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";
        let ids = authenticate("digest", b"super:test", Some(super_digest)).unwrap();
        assert_eq!(ids.len(), 2);
        let locked = vec![Acl::new(Perms::READ, Id::new("digest", "bob:xyz"))];
        assert_eq!(check(&locked, &ids, Perms::ADMIN), Ok(()));
        let not_super = authenticate("digest", b"super:wrong", Some(super_digest)).unwrap();
        assert_eq!(
            check(&locked, &not_super, Perms::READ),
            Err(ErrorCode::NoAuth)
        );
    }

    #[test]
    fn checks_grant_on_any_matching_entry() {
        let bob = Id::new("digest", &digest_id("bob:pw"));
        let acl = vec![
            Acl::new(Perms::READ, Id::anyone()),
            Acl::new(Perms::ALL, bob.clone()),
        ];
        assert_eq!(check(&acl, &[], Perms::READ), Ok(()));
        assert_eq!(check(&acl, &[], Perms::WRITE), Err(ErrorCode::NoAuth));
        assert_eq!(
            check(&acl, std::slice::from_ref(&bob), Perms::WRITE),
            Ok(())
        );
        assert_eq!(check(&acl, &[], Perms::READ | Perms::ADMIN), Ok(()));
        let other = Id::new("digest", &digest_id("bob:other"));
        assert_eq!(check(&acl, &[other], Perms::DELETE), Err(ErrorCode::NoAuth));
    }

    #[test]
    fn fixup_expands_auth_and_rejects_malformed_entries() {
        let bob = Id::new("digest", &digest_id("bob:pw"));
        let creator = Acl::creator_all();
        assert_eq!(
            fix_acl(&creator, &[bob.clone(), Id::new(SUPER_SCHEME, "")]),
            Ok(vec![Acl::new(Perms::ALL, bob.clone())])
        );
        assert_eq!(fix_acl(&creator, &[]), Err(ErrorCode::InvalidAcl));
        let doubled = [Acl::open(), Acl::open()].concat();
        assert_eq!(fix_acl(&doubled, &[]), Ok(Acl::open()));
        let bad = [
            vec![],
            vec![Acl::new(Perms::ALL, Id::new("world", "someone"))],
            vec![Acl::new(Perms::ALL, Id::new("ip", "10.0.0.1"))],
            vec![Acl::new(Perms::ALL, Id::new("digest", "no-colon"))],
            vec![Acl::new(Perms(64), Id::anyone())],
        ];
        for acl in bad {
            assert_eq!(
                fix_acl(&acl, std::slice::from_ref(&bob)),
                Err(ErrorCode::InvalidAcl),
                "{acl:?}"
            );
        }
    }

    #[test]
    fn get_acl_hides_digests_from_non_admins() {
        let bob = Id::new("digest", "bob:hash=");
        let acl = vec![
            Acl::new(Perms::ADMIN, bob.clone()),
            Acl::new(Perms::READ, Id::anyone()),
        ];
        assert_eq!(redact(&acl, &[bob]), acl);
        let shown = redact(&acl, &[]);
        assert_eq!(shown[0].id, Id::new("digest", "bob:x"));
        assert_eq!(shown[1], acl[1]);
    }
}
