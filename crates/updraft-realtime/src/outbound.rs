//! Where a URL a tenant gave may point: a webhook's target, a gateway's `EDS_URI`. Either makes this server send
//! requests on someone's behalf, so it must not become a way to reach what only the server can: link-local
//! addresses (cloud metadata services answer at 169.254.169.254 and fd00:ec2::254) and this server's own admin
//! API. Loopback and private networks stay allowed: self-hosted receivers live there, the MWS `enginio` receiver
//! of this very server included.
//!
//! IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`)
//! are judged as that IPv4 address, so `[::ffff:127.0.0.1]` is loopback like `127.0.0.1`.
//!
//! Checked when a webhook is saved (with DNS), again before each attempt ([`Guard::recheck`]: IP literals, and
//! names on one of our ports resolved and pinned), and on every DNS answer the delivery client gets, so a name
//! that later resolves to a link-local address is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `path` is one this server's API a webhook may target: an MWS receiver, made to take EDS webhooks, or
/// messages, of the default gateway or of a named one. Exactly these routes: no prefix or substring match.
fn own_receiver_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let gateway_id = |id: &str| {
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match segments.as_slice() {
        ["", "v1", rest @ ..] => match rest {
            ["messages"] | ["webhook_receivers", "enginio"] => true,
            ["gateways", id, "messages"] | ["gateways", id, "webhook_receivers", "enginio"] => gateway_id(id),
            _ => false,
        },
        _ => false,
    }
}

/// The IPv4 address an IPv6 address stands for, if it carries one: IPv4-mapped, IPv4-compatible (deprecated, but
/// routed by some stacks) or the NAT64 well-known prefix. `::` and `::1` stay IPv6.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let [a, b, c, d, e, f, g, h] = v6.segments();
    let embedded = Ipv4Addr::from(((g as u32) << 16) | h as u32);
    let compatible = [a, b, c, d, e, f] == [0; 6] && !matches!(v6, Ipv6Addr::UNSPECIFIED | Ipv6Addr::LOCALHOST);
    let nat64 = [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 { IpAddr::V4(embedded) } else { ip }
}

/// Why [`Guard::recheck`] stopped an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// The target may not be reached: never worth a retry.
    Refused(String),
    /// Its name did not resolve just now: a failed attempt like any other.
    Unresolved(String),
}

#[derive(Debug, Clone)]
pub struct Guard {
    /// Skips every check (`--webhooks-allow-unsafe-targets`), for receivers that really live at such addresses.
    pub allow_unsafe: bool,
    /// Where this server listens.
    pub own: Vec<SocketAddr>,
}

impl Guard {
    /// Why `url` may not be a webhook target, if it may not. Resolves the host name.
    pub async fn check(&self, url: &str) -> Result<(), String> {
        let url = self.check_syntax(url)?;
        if self.allow_unsafe {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|err| format!("the host name does not resolve: {err}"))?
                .collect(),
        };
        addrs.iter().try_for_each(|addr| self.check_addr(*addr, url.path()))
    }

    /// Before an attempt: the syntax, and the address when the host is an IP literal (no DNS involved, so the
    /// resolver below never sees it).
    pub fn check_literal(&self, url: &str) -> Result<(), String> {
        let url = self.check_syntax(url)?;
        if self.allow_unsafe {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check_addr(SocketAddr::new(ip, url.port_or_known_default().unwrap_or(80)), url.path()),
            Err(_) => Ok(()),
        }
    }

    /// Before an attempt at delivery time: the checks of [`Guard::check_literal`], and for a host name on a port
    /// this server listens on, its addresses resolved now and checked like a literal. Answers those addresses
    /// (`Some`) for the client to connect to exactly them, so a DNS answer that changes in between (rebinding)
    /// cannot lead to this server's API. On other ports the delivery client's resolver drops forbidden addresses.
    pub async fn recheck(&self, url: &str) -> Result<Option<(String, Vec<SocketAddr>)>, Recheck> {
        self.check_literal(url).map_err(Recheck::Refused)?;
        let url = self.check_syntax(url).map_err(Recheck::Refused)?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Ok(None) };
        if self.allow_unsafe || host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
            return Ok(None);
        }
        if !self.own.iter().any(|own| own.port() == port) {
            return Ok(None);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|err| Recheck::Unresolved(format!("the host name does not resolve: {err}")))?
            .collect();
        addrs.iter().try_for_each(|addr| self.check_addr(*addr, url.path())).map_err(Recheck::Refused)?;
        Ok(Some((host.to_owned(), addrs)))
    }

    fn check_syntax(&self, url: &str) -> Result<Url, String> {
        let url = Url::parse(url).map_err(|err| format!("not a URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https URLs are allowed".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("put credentials in headers, not in the URL".into());
        }
        Ok(url)
    }

    fn check_addr(&self, addr: SocketAddr, path: &str) -> Result<(), String> {
        let ip = canonical_ip(addr.ip());
        if forbidden_ip(ip) {
            return Err(format!("{} is a link-local, unspecified or multicast address", addr.ip()));
        }
        let ours = self.own.iter().any(|own| {
            let own_ip = canonical_ip(own.ip());
            own.port() == addr.port() && (own_ip == ip || ip.is_loopback() || own_ip.is_unspecified())
        });
        if ours && !own_receiver_path(path) {
            return Err("the URL points at this server's own API; only its webhook receivers and messages may be \
                        targeted"
                .into());
        }
        Ok(())
    }
}

/// Addresses no webhook may reach: link-local (metadata services), unspecified, multicast, broadcast.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            let aws_metadata = v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254];
            link_local || aws_metadata || v6.is_unspecified() || v6.is_multicast()
        }
    }
}

/// The delivery client's resolver: the system's, minus forbidden addresses.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|addr| !forbidden_ip(addr.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address a webhook may reach").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The resolver as reqwest takes it.
pub fn resolver() -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver)
}

/// An HTTP client for guarded targets: the guarded resolver, no redirects (a redirect could lead anywhere, past
/// the guard's check of the URL) and no proxy. `pinned` is what [`Guard::recheck`] answered.
pub fn client_builder(pinned: Option<&(String, Vec<SocketAddr>)>) -> reqwest::ClientBuilder {
    let builder =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().dns_resolver(resolver());
    match pinned {
        Some((host, addrs)) => builder.resolve_to_addrs(host, addrs),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard { allow_unsafe: false, own: vec!["127.0.0.1:8080".parse().unwrap()] }
    }

    #[tokio::test]
    async fn metadata_and_link_local_addresses_are_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]:8000/hook",
            "http://[::ffff:169.254.169.254]/",
            "http://0.0.0.0:9000/",
            "http://224.0.0.1/",
        ] {
            assert!(guard().check(url).await.is_err(), "{url}");
            assert!(guard().check_literal(url).is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn this_servers_admin_api_is_refused_but_its_receivers_are_not() {
        for url in [
            "http://127.0.0.1:8080/v1/account/apps",
            "http://localhost:8080/v1/gateways",
            "http://127.0.0.2:8080/v1/webhooks",
        ] {
            assert!(guard().check(url).await.is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:8080/v1/webhook_receivers/enginio",
            "http://localhost:8080/v1/gateways/abc/messages",
            "http://127.0.0.1:9000/v1/account/apps",
            "http://10.0.0.7/hook",
            "https://example.invalid.localhost/hook",
        ] {
            let checked = if url.contains("invalid") { guard().check_literal(url) } else { guard().check(url).await };
            assert!(checked.is_ok(), "{url}: {checked:?}");
        }
    }

    #[tokio::test]
    async fn finding_7_ipv6_forms_of_ipv4_addresses_are_judged_as_ipv4() {
        for url in [
            // This server through IPv4-mapped, IPv4-compatible and NAT64 IPv6.
            "http://[::ffff:127.0.0.1]:8080/v1/gateways",
            "http://[::ffff:7f00:1]:8080/v1/account/apps",
            "http://[::ffff:127.0.0.1]:8080/v1/objects/loop",
            "http://[::127.0.0.1]:8080/v1/objects/loop",
            "http://[64:ff9b::127.0.0.1]:8080/v1/webhooks",
            // The metadata service the same ways.
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        ] {
            assert!(guard().check(url).await.is_err(), "{url}");
            assert!(guard().check_literal(url).is_err(), "{url}");
            assert!(matches!(guard().recheck(url).await, Err(Recheck::Refused(_))), "{url}");
        }
        // Our receivers stay reachable whichever form names us, and other ports of loopback stay allowed.
        assert!(guard().check("http://[::ffff:127.0.0.1]:8080/v1/messages").await.is_ok());
        assert!(guard().check("http://[::ffff:127.0.0.1]:9000/v1/objects/loop").await.is_ok());
        let v6_own = Guard { allow_unsafe: false, own: vec!["[::ffff:127.0.0.1]:8080".parse().unwrap()] };
        assert!(v6_own.check("http://127.0.0.1:8080/v1/gateways").await.is_err());
        assert_eq!(canonical_ip("::1".parse().unwrap()), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(canonical_ip("::".parse().unwrap()), "::".parse::<IpAddr>().unwrap());
        assert_eq!(canonical_ip("2001:db8::1".parse().unwrap()), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn finding_7_own_receiver_paths_match_exactly() {
        for url in [
            "http://127.0.0.1:8080/v1/account/apps/messages",
            "http://127.0.0.1:8080/v1/objects/messages",
            "http://127.0.0.1:8080/v1/webhook_receivers/other",
            "http://127.0.0.1:8080/v1/webhook_receivers/enginio/x",
            "http://127.0.0.1:8080/v1/messages/",
            "http://127.0.0.1:8080/v1/gateways/a/b/messages",
            "http://127.0.0.1:8080/v1/gateways//messages",
            "http://127.0.0.1:8080/x/v1/messages",
        ] {
            assert!(guard().check(url).await.is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:8080/v1/messages",
            "http://127.0.0.1:8080/v1/messages?x=1",
            "http://127.0.0.1:8080/v1/webhook_receivers/enginio",
            "http://127.0.0.1:8080/v1/gateways/chat-1/messages",
            "http://127.0.0.1:8080/v1/gateways/default/webhook_receivers/enginio",
        ] {
            assert!(guard().check(url).await.is_ok(), "{url}");
        }
    }

    /// At delivery a name on one of our ports is resolved and checked again, and pinned to what was checked.
    #[tokio::test]
    async fn finding_7_names_on_our_ports_are_checked_again_at_delivery() {
        assert!(matches!(guard().recheck("http://localhost:8080/v1/gateways").await, Err(Recheck::Refused(_))));
        let pinned = guard().recheck("http://localhost:8080/v1/messages").await.unwrap().unwrap();
        assert_eq!(pinned.0, "localhost");
        assert!(!pinned.1.is_empty() && pinned.1.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
        // Elsewhere the delivery client's resolver is enough; literals were checked without DNS.
        assert_eq!(guard().recheck("http://localhost:9000/v1/gateways").await, Ok(None));
        assert_eq!(guard().recheck("http://127.0.0.1:8080/v1/messages").await, Ok(None));
        assert!(matches!(guard().recheck("http://name.invalid:8080/v1/messages").await, Err(Recheck::Unresolved(_))));
    }

    #[tokio::test]
    async fn malformed_urls_are_refused_unless_allowed_everything_but_syntax() {
        for url in ["ftp://example.org/", "not a url", "http://user:pw@127.0.0.1:9/", "http:///x"] {
            assert!(guard().check(url).await.is_err(), "{url}");
        }
        let open = Guard { allow_unsafe: true, ..guard() };
        assert!(open.check("http://169.254.169.254/").await.is_ok());
        assert!(open.check("ftp://example.org/").await.is_err());
    }
}
