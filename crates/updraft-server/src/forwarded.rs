//! `--trusted-proxies`: a reverse proxy or load balancer in front of the nodes says in `X-Forwarded-For` whom it
//! serves and in `X-Forwarded-Proto` how that client reached it. Updraft believes those headers only on
//! connections from the proxies named: any client can send them, and a client that could choose its own address
//! would escape every limit per client (login attempts, pending socket URIs). From a trusted proxy:
//! - the client's address is the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
//!   (each proxy appends the address it got the request from, so what is left of an untrusted one is the
//!   client's to write);
//! - the scheme is the first value of `X-Forwarded-Proto` (`https` gives `wss://` socket URIs and `https://`
//!   download URLs, as a TLS listener would).

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, Request};
use ipnet::IpNet;
use updraft_api::Transport;

/// The proxies whose forwarding headers are believed; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses and networks (`10.0.0.0/8, 127.0.0.1, ::1`).
    pub fn parse(list: &str) -> anyhow::Result<TrustedProxies> {
        let nets = list.split(',').map(str::trim).filter(|it| !it.is_empty()).map(|it| {
            it.parse::<IpNet>()
                .or_else(|_| it.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| anyhow::anyhow!("--trusted-proxies: {it:?} is neither an address nor a network"))
        });
        Ok(TrustedProxies(nets.collect::<anyhow::Result<_>>()?))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Puts the client's address and scheme, as a trusted proxy forwarded them, in the request's [`Transport`].
    pub(crate) fn apply<B>(&self, request: &mut Request<B>) {
        if self.0.is_empty() {
            return;
        }
        let Some(transport) = request.extensions().get::<Transport>().copied() else { return };
        let Some(peer) = transport.peer.filter(|peer| self.trusts(peer.ip())) else { return };
        let headers = request.headers();
        let client = self.client(headers).map_or(peer, |ip| SocketAddr::new(ip, 0));
        let tls = match first_value(headers, "x-forwarded-proto").map(str::to_ascii_lowercase).as_deref() {
            Some("https" | "wss") => true,
            Some("http" | "ws") => false,
            _ => transport.tls,
        };
        request.extensions_mut().insert(Transport { tls, peer: Some(client) });
    }

    /// The right-most forwarded address that is not a trusted proxy; the left-most when all are. `None` when the
    /// header is missing, or unreadable where it matters.
    fn client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let listed: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().ok())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut last = None;
        for entry in listed.iter().rev() {
            let ip = address(entry)?;
            if !self.trusts(ip) {
                return Some(ip);
            }
            last = Some(ip);
        }
        last
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn address(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    value.split(',').next().map(str::trim).filter(|it| !it.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[(&'static str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        for (name, value) in forwarded {
            request.headers_mut().append(*name, value.parse().unwrap());
        }
        request.extensions_mut().insert(Transport { tls: false, peer: Some(peer.parse().unwrap()) });
        request
    }

    fn seen(proxies: &str, peer: &str, forwarded: &[(&'static str, &str)]) -> (bool, String) {
        let mut request = request(peer, forwarded);
        TrustedProxies::parse(proxies).unwrap().apply(&mut request);
        let transport = request.extensions().get::<Transport>().copied().unwrap();
        (transport.tls, transport.peer.unwrap().ip().to_string())
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_its_scheme() {
        let headers = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")];
        assert_eq!(seen("10.0.0.0/8", "10.1.2.3:5000", &headers), (true, "203.0.113.7".into()));
        assert_eq!(seen("10.0.0.0/8", "192.0.2.1:5000", &headers), (false, "192.0.2.1".into()), "not a proxy");
        assert_eq!(seen("", "10.1.2.3:5000", &headers), (false, "10.1.2.3".into()), "none trusted by default");
        assert_eq!(seen("10.1.2.3", "10.1.2.3:5000", &[]), (false, "10.1.2.3".into()), "no headers: the proxy");
    }

    #[test]
    fn the_client_is_the_last_address_a_trusted_proxy_did_not_write() {
        // The client wrote "1.1.1.1" itself; the first proxy appended the client's real address.
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.7"), ("x-forwarded-for", "10.0.0.5")];
        assert_eq!(seen("10.0.0.0/8", "10.0.0.9:1", &chain).1, "203.0.113.7");
        assert_eq!(seen("10.0.0.0/8", "10.0.0.9:1", &[("x-forwarded-for", "10.0.0.7, 10.0.0.5")]).1, "10.0.0.7");
        let ported = [("x-forwarded-for", "[2001:db8::1]:4711")];
        assert_eq!(seen("::1", "[::1]:1", &ported).1, "2001:db8::1");
        assert_eq!(seen("10.0.0.0/8", "10.0.0.9:1", &[("x-forwarded-for", "1.1.1.1, junk")]).1, "10.0.0.9");
        assert!(seen("127.0.0.1", "127.0.0.1:1", &[("x-forwarded-proto", "HTTPS, http")]).0);
    }

    #[test]
    fn a_list_that_is_not_addresses_is_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/8, example.com").is_err());
        assert_eq!(TrustedProxies::parse(" ").unwrap(), TrustedProxies::default());
    }
}
