//! Choosing a /24 for a cluster's bridge network. Fixed container IPs need a subnet we name
//! (docker refuses `--ip` on networks it numbered itself), and parallel clusters (tests in one
//! process, or several processes) each need their own: candidates start at a spot derived
//! from a per-cluster seed, skip ranges the host already routes (a CI VM's own 10.x LAN), and
//! docker's refusal of an overlap with another network means "try the next one".

use std::net::Ipv4Addr;

/// Candidates lie in 10.200.0.0 – 10.239.255.0: 10 240 /24s, away from the 10.0.x and 10.1.x
/// ranges home and cloud networks favour.
const FIRST_SECOND_OCTET: u32 = 200;
const CANDIDATE_COUNT: u32 = 40 * 256;

/// Node `i` (1-based) gets `.{HOST_OFFSET + i}`; `.1` is docker's gateway.
const HOST_OFFSET: usize = 10;

/// The most nodes a /24 holds with the offset above.
pub(super) const MAX_NODES: usize = 254 - HOST_OFFSET;

/// A /24, by its network address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Subnet(Ipv4Addr);

impl Subnet {
    pub fn cidr(&self) -> String {
        format!("{}/24", self.0)
    }

    pub fn gateway(&self) -> String {
        self.host(1)
    }

    /// The address of node `index` (1-based).
    pub fn node(&self, index: usize) -> String {
        self.host(HOST_OFFSET + index)
    }

    fn host(&self, last_octet: usize) -> String {
        let [a, b, c, _] = self.0.octets();
        format!("{a}.{b}.{c}.{last_octet}")
    }

    fn overlaps(&self, dest: u32, mask: u32) -> bool {
        let ours = u32::from(self.0);
        let common = mask & 0xffff_ff00;
        ours & common == dest & common
    }
}

/// Candidate subnets in the order to try them, starting at a spot chosen by `seed`.
pub(super) fn candidates(seed: u64) -> impl Iterator<Item = Subnet> {
    let start = (seed % u64::from(CANDIDATE_COUNT)) as u32;
    (0..CANDIDATE_COUNT).map(move |k| {
        let index = (start + k) % CANDIDATE_COUNT;
        let second = FIRST_SECOND_OCTET + index / 256;
        let third = index % 256;
        Subnet(Ipv4Addr::new(10, second as u8, third as u8, 0))
    })
}

/// Whether the host already routes part of `subnet` (default routes aside, which cover
/// everything and say nothing).
pub(super) fn host_routes_overlap(subnet: &Subnet, routes: &[(u32, u32)]) -> bool {
    routes
        .iter()
        .any(|&(dest, mask)| mask != 0 && subnet.overlaps(dest, mask))
}

/// (destination, mask) of the host's IPv4 routes, from /proc/net/route; none if unreadable.
pub(super) fn host_routes() -> Vec<(u32, u32)> {
    std::fs::read_to_string("/proc/net/route")
        .map(|text| parse_routes(&text))
        .unwrap_or_default()
}

/// The kernel prints each address as the native-endian integer of its network-order bytes.
fn parse_routes(text: &str) -> Vec<(u32, u32)> {
    let field = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some((field(f.get(1)?)?, field(f.get(7)?)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        br-1\t0007D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

    #[test]
    fn routes_parse_in_network_order() {
        let routes = parse_routes(SAMPLE);
        assert_eq!(
            routes[1],
            (
                u32::from(Ipv4Addr::new(10, 213, 7, 0)),
                u32::from(Ipv4Addr::new(255, 255, 255, 0))
            )
        );
        assert_eq!(routes[2].0, u32::from(Ipv4Addr::new(172, 17, 0, 0)));
    }

    #[test]
    fn overlapping_routes_are_skipped_but_default_is_not() {
        let routes = parse_routes(SAMPLE);
        let taken = Subnet(Ipv4Addr::new(10, 213, 7, 0));
        let free = Subnet(Ipv4Addr::new(10, 213, 8, 0));
        assert!(host_routes_overlap(&taken, &routes));
        assert!(!host_routes_overlap(&free, &routes));
        let wide = [(u32::from(Ipv4Addr::new(10, 0, 0, 0)), 0xff00_0000)];
        assert!(host_routes_overlap(&free, &wide));
    }

    #[test]
    fn candidates_are_distinct_private_slash_24s() {
        let all: std::collections::BTreeSet<String> =
            candidates(12_345).map(|s| s.cidr()).collect();
        assert_eq!(all.len(), CANDIDATE_COUNT as usize);
        let first = candidates(7).next().unwrap();
        assert_eq!(first.cidr(), "10.200.7.0/24");
        assert_eq!(first.gateway(), "10.200.7.1");
        assert_eq!(first.node(1), "10.200.7.11");
        assert_eq!(first.node(MAX_NODES), "10.200.7.254");
    }
}
