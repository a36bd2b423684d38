//! Where a webhook may point. A webhook makes this server send requests on an admin's behalf, so it must not
//! become a way to reach what only the server can: link-local addresses (cloud metadata services answer at
//! 169.254.169.254 and fd00:ec2::254) and this server's own admin API. Loopback and private networks stay
//! allowed: self-hosted receivers live there, the MWS `enginio` receiver of this very server included.
//!
//! Checked when a webhook is saved (with DNS), again before each attempt for IP literals, and on every DNS
//! answer the delivery client gets, so a name that later resolves to a link-local address is refused too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Paths of this server a webhook may target: the MWS receivers, made to take EDS webhooks, and messages.
const OWN_RECEIVER_PATHS: [&str; 2] = ["/webhook_receivers/", "/messages"];

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
        if forbidden_ip(addr.ip()) {
            return Err(format!("{} is a link-local, unspecified or multicast address", addr.ip()));
        }
        let ours = self.own.iter().any(|own| {
            own.port() == addr.port() && (own.ip() == addr.ip() || addr.ip().is_loopback() || own.ip().is_unspecified())
        });
        if ours && !OWN_RECEIVER_PATHS.iter().any(|allowed| path.contains(allowed)) {
            return Err("the URL points at this server's own API; only its webhook receivers and messages may be \
                        targeted"
                .into());
        }
        Ok(())
    }
}

/// Addresses no webhook may reach: link-local (metadata services), unspecified, multicast, broadcast.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
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
    async fn malformed_urls_are_refused_unless_allowed_everything_but_syntax() {
        for url in ["ftp://example.org/", "not a url", "http://user:pw@127.0.0.1:9/", "http:///x"] {
            assert!(guard().check(url).await.is_err(), "{url}");
        }
        let open = Guard { allow_unsafe: true, ..guard() };
        assert!(open.check("http://169.254.169.254/").await.is_ok());
        assert!(open.check("ftp://example.org/").await.is_err());
    }
}
