//! The HTTP client every call to a provider goes through.
//!
//! It follows no redirects, ignores proxy settings from the environment, bounds
//! the time and size of every exchange, and connects only to addresses that
//! are public or that the operator allow-listed (`PLUGBOARD_ALLOW_HOSTS`). The
//! address check is made on what DNS actually returned, inside the resolver the
//! connection uses, so a name that re-binds to an internal address between a
//! check and the connection cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use ipnet::IpNet;
use url::{Host, Url};

mod pool;

use pool::{Pool, PooledBody};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedCgnat,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    /// Other special-purpose or reserved ranges (benchmarking, 0.0.0.0/8,
    /// 240.0.0.0/4, IPv6 unique-local and site-local, deprecated IPv4-compatible …).
    Reserved,
}

impl AddressClass {
    pub fn is_internal(self) -> bool {
        self != AddressClass::Public
    }
}

/// Classifies an address. IPv6 forms that embed an IPv4 address (mapped,
/// compatible, NAT64, 6to4) are classified by the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if o[0] == 127 {
        AddressClass::Loopback
    } else if o[0] == 10
        || (o[0] == 172 && (16..=31).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
    {
        AddressClass::Private
    } else if o[0] == 169 && o[1] == 254 {
        AddressClass::LinkLocal
    } else if o[0] == 100 && (64..=127).contains(&o[1]) {
        AddressClass::SharedCgnat
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if o[0] >= 224 && o[0] <= 239 {
        AddressClass::Multicast
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
    {
        AddressClass::Documentation
    } else if o[0] == 0
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || (o[0] == 192 && o[1] == 88 && o[2] == 99)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (the deprecated compatible form).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return match classify_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        )) {
            AddressClass::Public => AddressClass::Reserved,
            other => other,
        };
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48) carry an IPv4 address in the last 32 bits.
    if (s[0] == 0x64 && s[1] == 0xff9b) && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return match classify_v4(v4) {
            AddressClass::Public if s[2] == 1 => AddressClass::Reserved,
            other => other,
        };
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return classify_v4(v4);
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return AddressClass::LinkLocal;
    }
    if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        return AddressClass::Private;
    }
    if (s[0] & 0xff00) == 0xff00 {
        return AddressClass::Multicast;
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 || s[0] == 0x3fff && (s[1] & 0xf000) == 0 {
        return AddressClass::Documentation;
    }
    // Teredo (2001::/32), ORCHIDv2 and benchmarking (2001:2::/48, 2001:20::/28), discard-only (100::/64).
    if (s[0] == 0x2001 && (s[1] == 0 || s[1] == 2 || (s[1] & 0xfff0) == 0x20))
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
    {
        return AddressClass::Reserved;
    }
    // Only the global unicast block 2000::/3 is public.
    if (s[0] & 0xe000) != 0x2000 {
        return AddressClass::Reserved;
    }
    AddressClass::Public
}

/// The operator's exceptions: hosts, IPs and CIDRs outbound calls may reach although internal.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    names: Vec<String>,
    nets: Vec<IpNet>,
    /// `PLUGBOARD_OUTBOUND_ONLY_ALLOWED`: only these hosts may be called at
    /// all, public ones included; a name not listed is refused before DNS.
    only_listed: bool,
}

impl AllowList {
    /// Parses `PLUGBOARD_ALLOW_HOSTS`: comma-separated host names, IP addresses or CIDRs.
    pub fn parse(spec: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bare = item.trim_start_matches('[').trim_end_matches(']');
            if let Ok(net) = bare.parse::<IpNet>() {
                list.nets.push(net.trunc());
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if item
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                list.names
                    .push(item.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{item}` is not a host name, an IP address or a CIDR"
                ));
            }
        }
        Ok(list)
    }

    /// Only the listed hosts may be called (a closed test network, a fuzzing run).
    pub fn only_listed(mut self) -> AllowList {
        self.only_listed = true;
        self
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn allows_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&name)
    }

    /// Whether a connection to `ip` is permitted.
    pub fn permits(&self, ip: IpAddr) -> bool {
        (!self.only_listed && !classify(ip).is_internal()) || self.allows_ip(ip)
    }
}

/// IPv4-mapped IPv6 addresses compared as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Why an outbound call did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the URL is not a valid http(s) URL")]
    InvalidUrl,
    #[error("{host} is an internal address ({class:?}); outbound calls may reach it only if PLUGBOARD_ALLOW_HOSTS lists it")]
    Refused { host: String, class: AddressClass },
    #[error("{0} is not in PLUGBOARD_ALLOW_HOSTS, and only the hosts listed there may be called (PLUGBOARD_OUTBOUND_ONLY_ALLOWED)")]
    Unlisted(String),
    #[error("could not resolve {0}")]
    Resolve(String),
    #[error("the request timed out")]
    Timeout,
    #[error("a body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request failed: {0}")]
    Transport(String),
}

/// `path` (starting with `/`, with any query) appended to `base`, whose own
/// path is kept; `None` if the result would leave the base's scheme, host or
/// port, or carry a user name.
pub fn append_path(base: &str, path: &str) -> Option<Url> {
    append_path_under(base, &Url::parse(base).ok()?, path)
}

/// [`append_path`] with the base already parsed (`base_url` is `base`'s parse).
pub fn append_path_under(base: &str, base_url: &Url, path: &str) -> Option<Url> {
    // The usual case — a base with no query or fragment, a path with no
    // fragment — without parsing the scheme and host again: the base's path
    // and the caller's joined and set on a copy of the parsed base, which
    // is what parsing the joined text gives (unit-tested against it).
    if base_url.query().is_none()
        && base_url.fragment().is_none()
        && path.starts_with('/')
        && !path.contains('#')
    {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = base_url.clone();
        let base_path = base_url.path().trim_end_matches('/');
        let mut joined = String::with_capacity(base_path.len() + path.len());
        joined.push_str(base_path);
        joined.push_str(path);
        url.set_path(&joined);
        url.set_query(query);
        return Some(url);
    }
    append_by_parsing(base, base_url, path)
}

/// [`append_path_under`] by parsing the joined text whole.
fn append_by_parsing(base: &str, base_url: &Url, path: &str) -> Option<Url> {
    let joined = format!("{}{}", base.trim_end_matches('/'), path);
    let url = Url::parse(&joined).ok()?;
    let same = url.scheme() == base_url.scheme()
        && url.host() == base_url.host()
        && url.port_or_known_default() == base_url.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    same.then_some(url)
}

/// Checks a URL's host without resolving it: literal addresses (in any
/// spelling the URL parser accepts, e.g. `0x7f.1`, `2130706433`, `[::ffff:7f00:1]`)
/// and `localhost` names. Names that need DNS are checked when the call is made.
pub fn check_url_target(url: &Url, allow: &AllowList) -> Result<(), OutboundError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutboundError::InvalidUrl);
    }
    match url.host() {
        None => Err(OutboundError::InvalidUrl),
        Some(Host::Ipv4(v4)) => check_ip(IpAddr::V4(v4), allow),
        Some(Host::Ipv6(v6)) => check_ip(IpAddr::V6(v6), allow),
        Some(Host::Domain(name)) => {
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            if allow.only_listed && !allow.allows_name(&lower) {
                return Err(OutboundError::Unlisted(name.to_string()));
            }
            let is_localhost = lower == "localhost" || lower.ends_with(".localhost");
            if is_localhost
                && !allow.allows_name(&lower)
                && !allow.allows_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
                && !allow.allows_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
            {
                return Err(OutboundError::Refused {
                    host: name.to_string(),
                    class: AddressClass::Loopback,
                });
            }
            Ok(())
        }
    }
}

fn check_ip(ip: IpAddr, allow: &AllowList) -> Result<(), OutboundError> {
    if allow.permits(ip) {
        Ok(())
    } else {
        Err(OutboundError::Refused {
            host: ip.to_string(),
            class: classify(ip),
        })
    }
}

/// A resolver that hands the connector only permitted addresses.
#[derive(Clone)]
struct GuardedResolver {
    allow: Arc<AllowList>,
}

type ResolveError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ResolveError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| Box::new(OutboundError::Resolve(host.clone())) as ResolveError)?
                .collect();
            let name_allowed = allow.allows_name(&host);
            let permitted: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| name_allowed || allow.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let first = resolved.first().map(|a| a.ip());
                let err = match first {
                    Some(ip) => OutboundError::Refused {
                        host,
                        class: classify(ip),
                    },
                    None => OutboundError::Resolve(host),
                };
                return Err(Box::new(err) as ResolveError);
            }
            Ok(permitted.into_iter())
        })
    }
}

/// Limits on one outbound exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// A finished outbound exchange with its body read in full (within the limit).
#[derive(Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Bytes that arrive (or leave) a piece at a time.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, OutboundError>> + Send>>;

/// An exchange whose status and headers have arrived and whose body is read
/// as it comes, still within the size limit and the total time limit.
pub struct StreamedResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: PooledBody,
    deadline: tokio::time::Instant,
    max_body_bytes: usize,
    received: usize,
}

impl std::fmt::Debug for StreamedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedResponse")
            .field("status", &self.status)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl StreamedResponse {
    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, OutboundError> {
        let chunk = loop {
            let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
                .await
                .map_err(|_| OutboundError::Timeout)?;
            match frame {
                None => break None,
                Some(Err(e)) => return Err(OutboundError::Transport(error_text(&e))),
                // Trailers are not passed on.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => break Some(data),
                    Err(_) => continue,
                },
            }
        };
        if let Some(chunk) = &chunk {
            self.received += chunk.len();
            if self.received > self.max_body_bytes {
                return Err(OutboundError::TooLarge(self.max_body_bytes));
            }
        }
        Ok(chunk)
    }

    /// The body as it comes, for passing on without holding it whole: cut
    /// at the size limit and the total time limit.
    pub fn into_body(self) -> LimitedBody {
        LimitedBody {
            body: self.body,
            deadline: self.deadline,
            sleep: None,
            max_body_bytes: self.max_body_bytes,
            received: self.received,
            done: false,
        }
    }

    /// Reads the rest of the body.
    pub async fn read_all(mut self) -> Result<OutboundResponse, OutboundError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

/// What a request body is sent as.
type SentBody = UnsyncBoxBody<Bytes, OutboundError>;
type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// An answer's body passed on as it arrives ([`StreamedResponse::into_body`]):
/// its data only, an error once it passes the size limit or the deadline.
pub struct LimitedBody {
    body: PooledBody,
    deadline: tokio::time::Instant,
    /// The deadline's timer, made the first time the body has to wait.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    max_body_bytes: usize,
    received: usize,
    done: bool,
}

impl hyper::body::Body for LimitedBody {
    type Data = Bytes;
    type Error = OutboundError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, OutboundError>>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not passed on.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.received += data.len();
                    if this.received > this.max_body_bytes {
                        this.done = true;
                        return Poll::Ready(Some(Err(OutboundError::TooLarge(
                            this.max_body_bytes,
                        ))));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(OutboundError::Transport(error_text(&e)))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    let deadline = this.deadline;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if std::future::Future::poll(sleep.as_mut(), cx).is_ready() {
                        this.done = true;
                        return Poll::Ready(Some(Err(OutboundError::Timeout)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }
}

/// The outbound HTTP client.
#[derive(Clone)]
pub struct Outbound {
    pool: Arc<Pool>,
    allow: Arc<AllowList>,
    limits: Limits,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow", &self.allow)
            .field("limits", &self.limits)
            .finish()
    }
}

const USER_AGENT: &str = concat!("plugboard/", env!("CARGO_PKG_VERSION"));

impl Outbound {
    /// A client that trusts the Web PKI's roots (Mozilla's, as the
    /// `webpki-roots` crate carries them).
    pub fn new(allow: AllowList, limits: Limits) -> Result<Outbound, OutboundError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(allow, limits, roots)
    }

    /// A client that trusts only `roots` (a test's own authority).
    pub fn with_roots(
        allow: AllowList,
        limits: Limits,
        roots: rustls::RootCertStore,
    ) -> Result<Outbound, OutboundError> {
        let allow = Arc::new(allow);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| OutboundError::Transport(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            allow: allow.clone(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(limits.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Outbound {
            pool: Arc::new(Pool::new(connector)),
            allow,
            limits,
        })
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sends a request and reads its body up to the size limit.
    pub async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        self.open(request).await?.read_all().await
    }

    /// Sends a request and answers once the status and headers are in; the
    /// body follows through [`StreamedResponse`]. The only way out: every call
    /// gets the address check, the time limit and the size limits (a streamed
    /// request body is cut at the same limit), and its credential is placed
    /// last, on the request exactly as it will be sent.
    pub async fn open(&self, request: OutboundRequest) -> Result<StreamedResponse, OutboundError> {
        let OutboundRequest {
            method,
            mut url,
            mut headers,
            body,
            credential,
        } = request;
        // Literal addresses never reach the resolver, so they are checked here.
        check_url_target(&url, &self.allow)?;
        if let Some(credential) = &credential {
            credential.place(&mut Prepared {
                method: &method,
                url: &mut url,
                headers: &mut headers,
                body: match &body {
                    RequestBody::Bytes(bytes) => Some(bytes),
                    RequestBody::Stream(_) => None,
                },
            })?;
            check_url_target(&url, &self.allow)?;
        }
        // Set when a streamed body went over the limit (a whole one is checked here).
        let mut overflowed = None;
        let body: SentBody = match body {
            RequestBody::Bytes(bytes) => {
                if bytes.len() > self.limits.max_body_bytes {
                    return Err(OutboundError::TooLarge(self.limits.max_body_bytes));
                }
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            }
            RequestBody::Stream(stream) => {
                let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
                overflowed = Some(flag.clone());
                let bounded = bounded(stream, self.limits.max_body_bytes, flag);
                StreamBody::new(bounded.map(|chunk| chunk.map(Frame::data))).boxed_unsync()
            }
        };
        headers
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(USER_AGENT));
        headers
            .entry(http::header::ACCEPT)
            .or_insert(http::HeaderValue::from_static("*/*"));
        // On its connection, a request names its path and query alone
        // (origin-form); a fragment is never sent.
        let uri = http::Uri::try_from(&url[url::Position::BeforePath..url::Position::AfterQuery])
            .map_err(|_| OutboundError::InvalidUrl)?;
        let mut built = http::Request::new(body);
        *built.method_mut() = method;
        *built.uri_mut() = uri;
        *built.headers_mut() = headers;
        let deadline = tokio::time::Instant::now() + self.limits.total_timeout;
        let mut response =
            match tokio::time::timeout_at(deadline, self.pool.send(&url, built)).await {
                Err(_) => return Err(OutboundError::Timeout),
                Ok(Ok(response)) => response,
                Ok(Err(_))
                    if overflowed
                        .as_ref()
                        .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::SeqCst)) =>
                {
                    return Err(OutboundError::TooLarge(self.limits.max_body_bytes))
                }
                Ok(Err(e)) => return Err(map_client_error(&*e)),
            };
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        Ok(StreamedResponse {
            status,
            headers,
            body: response.into_body(),
            deadline,
            max_body_bytes: self.limits.max_body_bytes,
            received: 0,
        })
    }
}

/// A request body stream that fails once it has given more than `max` bytes.
fn bounded(
    stream: ByteStream,
    max: usize,
    overflowed: Arc<std::sync::atomic::AtomicBool>,
) -> impl Stream<Item = Result<Bytes, OutboundError>> + Send {
    let mut sent = 0usize;
    stream.map(move |chunk| {
        let chunk = chunk?;
        sent += chunk.len();
        if sent > max {
            overflowed.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(OutboundError::TooLarge(max));
        }
        Ok(chunk)
    })
}

/// A request as it will be sent, for a credential to be placed on.
pub struct Prepared<'a> {
    pub method: &'a http::Method,
    pub url: &'a mut Url,
    pub headers: &'a mut http::header::HeaderMap,
    /// The whole body, or `None` for a streamed one.
    pub body: Option<&'a [u8]>,
}

/// How a connection's credential goes on a request: each auth family
/// implements it once (`crate::auth`), and [`Outbound::open`] calls it last.
pub trait Credential: Send + Sync {
    fn place(&self, request: &mut Prepared<'_>) -> Result<(), OutboundError>;
}

impl<C: Credential + ?Sized> Credential for Arc<C> {
    fn place(&self, request: &mut Prepared<'_>) -> Result<(), OutboundError> {
        (**self).place(request)
    }
}

enum RequestBody {
    Bytes(Bytes),
    Stream(ByteStream),
}

/// A request to send with [`Outbound::send`] or [`Outbound::open`]: plain
/// data, so that nothing can reach the network without the client's checks.
pub struct OutboundRequest {
    method: http::Method,
    url: Url,
    headers: http::header::HeaderMap,
    body: RequestBody,
    credential: Option<Arc<dyn Credential>>,
}

impl std::fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers and body may carry credentials; the URL's query may too.
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .field("path", &self.url.path())
            .finish_non_exhaustive()
    }
}

impl OutboundRequest {
    pub fn new(method: http::Method, url: Url) -> OutboundRequest {
        OutboundRequest {
            method,
            url,
            headers: http::header::HeaderMap::new(),
            body: RequestBody::Bytes(Bytes::new()),
            credential: None,
        }
    }

    pub fn get(url: Url) -> OutboundRequest {
        Self::new(http::Method::GET, url)
    }

    pub fn post(url: Url) -> OutboundRequest {
        Self::new(http::Method::POST, url)
    }

    /// Adds a header; a name or value that is not valid in HTTP is refused.
    pub fn header(mut self, name: &str, value: &str) -> Result<OutboundRequest, OutboundError> {
        let name = http::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| OutboundError::Transport("an invalid header name".into()))?;
        let mut value = http::header::HeaderValue::from_str(value)
            .map_err(|_| OutboundError::Transport(format!("an invalid value for header {name}")))?;
        if name == http::header::AUTHORIZATION {
            value.set_sensitive(true);
        }
        self.headers.append(name, value);
        Ok(self)
    }

    /// Headers as they came, instead of those added so far (a proxied
    /// caller's: names and values are already valid HTTP).
    pub fn with_headers(mut self, headers: http::header::HeaderMap) -> OutboundRequest {
        self.headers = headers;
        self
    }

    /// Adds a header as it came (a proxied caller's: names and values are
    /// already valid HTTP).
    pub fn header_value(
        mut self,
        name: http::header::HeaderName,
        value: http::header::HeaderValue,
    ) -> OutboundRequest {
        self.headers.append(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> OutboundRequest {
        self.body = RequestBody::Bytes(body.into());
        self
    }

    /// A body passed on as it arrives (the proxy's), cut at the size limit.
    pub fn body_stream(mut self, body: ByteStream) -> OutboundRequest {
        self.body = RequestBody::Stream(body);
        self
    }

    /// The connection's credential: the client places it on the request as
    /// the credential's auth family says, after every other change.
    pub fn credential(mut self, credential: impl Credential + 'static) -> OutboundRequest {
        self.credential = Some(Arc::new(credential));
        self
    }

    /// A credential kept for many requests (the proxy's prepared connections').
    pub fn shared_credential(mut self, credential: Arc<dyn Credential>) -> OutboundRequest {
        self.credential = Some(credential);
        self
    }
}

impl TryFrom<http::Request<Vec<u8>>> for OutboundRequest {
    type Error = OutboundError;

    fn try_from(request: http::Request<Vec<u8>>) -> Result<Self, OutboundError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string()).map_err(|_| OutboundError::InvalidUrl)?;
        Ok(OutboundRequest {
            method: parts.method,
            url,
            headers: parts.headers,
            body: RequestBody::Bytes(body.into()),
            credential: None,
        })
    }
}

/// An error and its causes, as one line.
fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn map_client_error(err: &(dyn std::error::Error + 'static)) -> OutboundError {
    // A refusal from the resolver travels inside the transport error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(OutboundError::Refused { host, class }) = e.downcast_ref::<OutboundError>() {
            return OutboundError::Refused {
                host: host.clone(),
                class: *class,
            };
        }
        if let Some(OutboundError::Resolve(host)) = e.downcast_ref::<OutboundError>() {
            return OutboundError::Resolve(host.clone());
        }
        if let Some(OutboundError::TooLarge(max)) = e.downcast_ref::<OutboundError>() {
            return OutboundError::TooLarge(*max);
        }
        source = e.source();
    }
    // The client's errors never carry the URL (its query may hold an API key).
    OutboundError::Transport(error_text(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_appended_to_a_parsed_base_is_what_parsing_the_joined_text_gives() {
        let bases = [
            "https://api.example.com",
            "https://api.example.com/",
            "https://api.example.com/v2",
            "https://api.example.com/v2/",
            "https://api.example.com/v2//",
            "http://127.0.0.1:8080/a%20b/",
            "https://API.Example.COM:443/base",
            "https://xn--bcher-kva.example/ü/",
            "https://api.example.com/v1?key=1",
            "https://api.example.com/v1#part",
        ];
        let paths = [
            "/",
            "/me",
            "/users/42?limit=10&cursor=a%2Fb",
            "/a b/ü?q=ü ü&x",
            "/files/a%20b.txt",
            "/@me",
            "/a/./b/../c",
            "/x?",
            "/x?a=1#frag",
            "/%2e%2e/x",
            "/a|b^c{d}`e",
            "/?only=query",
        ];
        for base in bases {
            let base_url = Url::parse(base).unwrap();
            for path in paths {
                assert_eq!(
                    append_path_under(base, &base_url, path).map(String::from),
                    append_by_parsing(base, &base_url, path).map(String::from),
                    "{base} + {path}"
                );
            }
        }
    }

    #[test]
    fn only_listed_hosts_may_be_called_when_the_operator_says_so() {
        let strict = AllowList::parse("127.0.0.1,api.example.com")
            .unwrap()
            .only_listed();
        let check = |url: &str| check_url_target(&Url::parse(url).unwrap(), &strict);
        assert!(matches!(
            check("https://example.com/x"),
            Err(OutboundError::Unlisted(_))
        ));
        assert!(matches!(
            check("http://93.184.216.34/"),
            Err(OutboundError::Refused { .. })
        ));
        assert!(check("http://127.0.0.1:9/").is_ok());
        assert!(check("https://api.example.com/").is_ok());
        assert!(!strict.permits("93.184.216.34".parse().unwrap()));
        // Without the setting, public hosts are called as ever.
        let open = AllowList::parse("127.0.0.1").unwrap();
        assert!(check_url_target(&Url::parse("https://example.com/x").unwrap(), &open).is_ok());
        assert!(open.permits("93.184.216.34".parse().unwrap()));
    }

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classifies_internal_ranges_without_connecting() {
        for (addr, expected) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.127.255.254", AddressClass::SharedCgnat),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            ("224.0.0.1", AddressClass::Multicast),
            ("198.18.0.1", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Documentation),
            ("::1", AddressClass::Loopback),
            ("::", AddressClass::Unspecified),
            ("::ffff:127.0.0.2", AddressClass::Loopback),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::127.0.0.1", AddressClass::Loopback),
            ("::8.8.8.8", AddressClass::Reserved),
            ("64:ff9b::10.0.0.1", AddressClass::Private),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("2002:c0a8:101::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("fec0::1", AddressClass::Private),
            ("ff02::1", AddressClass::Multicast),
            ("2001:db8::1", AddressClass::Documentation),
            ("2001::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
        ] {
            assert_eq!(class(addr), expected, "{addr}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(public), AddressClass::Public, "{public}");
        }
    }

    #[test]
    fn literal_spellings_of_loopback_are_refused_before_any_connection() {
        let allow = AllowList::parse("127.0.0.1").unwrap();
        for url in [
            "http://127.0.0.2/",
            "http://2130706434/",
            "http://0x7f000002/",
            "http://0x7f.0.0.2/",
            "http://0177.0.0.2/",
            "http://127.2/",
            "http://[::ffff:127.0.0.2]/",
            "http://[::ffff:7f00:2]/",
            "http://[::1]/",
            "http://localhost/",
            "http://0.0.0.0/",
        ] {
            let parsed = Url::parse(url).unwrap();
            let result = check_url_target(&parsed, &allow);
            if url == "http://localhost/" {
                // localhost is 127.0.0.1 as well, which is allow-listed; the
                // resolver then drops ::1 and keeps 127.0.0.1.
                assert!(result.is_ok(), "{url}");
            } else {
                assert!(
                    matches!(result, Err(OutboundError::Refused { .. })),
                    "{url}: {result:?}"
                );
            }
        }
        assert!(check_url_target(&Url::parse("http://127.0.0.1:9/").unwrap(), &allow).is_ok());
        assert!(
            check_url_target(&Url::parse("http://[::ffff:127.0.0.1]/").unwrap(), &allow).is_ok()
        );
        assert!(check_url_target(&Url::parse("ftp://example.com/").unwrap(), &allow).is_err());
    }

    #[test]
    fn allow_list_parses_names_ips_and_cidrs() {
        let allow = AllowList::parse(" api.internal , 10.0.0.0/8, ::1, [fd00::1] ").unwrap();
        assert!(allow.allows_name("API.internal."));
        assert!(allow.allows_ip("10.9.8.7".parse().unwrap()));
        assert!(allow.allows_ip("::ffff:10.9.8.7".parse().unwrap()));
        assert!(allow.allows_ip("::1".parse().unwrap()));
        assert!(allow.allows_ip("fd00::1".parse().unwrap()));
        assert!(!allow.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(AllowList::parse("http://x").is_err());
    }
}
