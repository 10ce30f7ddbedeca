//! The webhook HTTP client: one `POST` per connection over HTTP/1.1, plain or TLS.
//!
//! A small client on hyper rather than reqwest with TLS: reqwest's rustls features would,
//! through cargo's feature unification, switch TLS on for every reqwest client of the
//! workspace, and those then panic unless a process-wide crypto provider was installed. Here
//! the TLS configuration is explicit (rustls, ring, webpki roots) and local.
//!
//! No redirects are followed (the signed body goes only where it was registered to go), no
//! connections are pooled (webhook traffic is sparse, and a fresh connection per attempt
//! makes every attempt independent), the whole exchange is bounded by one timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("timed out")]
    Timeout,
    #[error("invalid url: {0}")]
    Url(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
}

#[derive(Clone)]
pub struct WebhookClient {
    tls: TlsConnector,
    timeout: Duration,
    user_agent: HeaderValue,
}

impl WebhookClient {
    pub fn new(timeout: Duration) -> Self {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            user_agent: HeaderValue::from_static(concat!("agora-webhooks/", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// `POST body` to `url` with `headers`; the status code of the answer (its body is not
    /// read). Everything, from DNS to the status line, within the client's timeout.
    pub async fn post(&self, url: &str, headers: &[(&'static str, String)], body: String) -> Result<u16, RequestError> {
        match tokio::time::timeout(self.timeout, self.exchange(url, headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(RequestError::Timeout),
        }
    }

    async fn exchange(&self, url: &str, headers: &[(&'static str, String)], body: String) -> Result<u16, RequestError> {
        let url = url::Url::parse(url).map_err(|e| RequestError::Url(e.to_string()))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(RequestError::Url(format!("unsupported scheme {other}"))),
        };
        let port = url.port_or_known_default().ok_or_else(|| RequestError::Url("no port".into()))?;
        let (tcp, server_name, authority) = match url.host() {
            Some(url::Host::Domain(domain)) => {
                let tcp = TcpStream::connect((domain, port)).await;
                (tcp, ServerName::try_from(domain.to_owned()).ok(), domain.to_owned())
            }
            Some(url::Host::Ipv4(ip)) => (
                TcpStream::connect(SocketAddr::from((ip, port))).await,
                Some(ServerName::from(std::net::IpAddr::V4(ip))),
                ip.to_string(),
            ),
            Some(url::Host::Ipv6(ip)) => (
                TcpStream::connect(SocketAddr::from((ip, port))).await,
                Some(ServerName::from(std::net::IpAddr::V6(ip))),
                format!("[{ip}]"),
            ),
            None => return Err(RequestError::Url("no host".into())),
        };
        let host = if url.port().is_some() { format!("{authority}:{port}") } else { authority.clone() };
        let tcp = tcp.map_err(|e| RequestError::Connect(host.clone(), e))?;
        let _ = tcp.set_nodelay(true);
        if tls {
            let name =
                server_name.ok_or_else(|| RequestError::Url(format!("{authority} is not a valid TLS server name")))?;
            let stream = self.tls.connect(name, tcp).await.map_err(|e| RequestError::Tls(host.clone(), e))?;
            self.send(stream, &url, &host, headers, body).await
        } else {
            self.send(tcp, &url, &host, headers, body).await
        }
    }

    async fn send<S>(
        &self,
        stream: S,
        url: &url::Url,
        host: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<u16, RequestError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| RequestError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = Request::post(path)
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| RequestError::Http(e.to_string()))?;
        let map = request.headers_mut();
        map.insert(HOST, HeaderValue::from_str(host).map_err(|e| RequestError::Url(e.to_string()))?);
        map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        map.insert(hyper::header::USER_AGENT, self.user_agent.clone());
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| RequestError::Http(e.to_string()))?;
            map.insert(HeaderName::from_static(name), value);
        }
        let result = sender.send_request(request).await;
        driver.abort();
        result.map(|response| response.status().as_u16()).map_err(|e| RequestError::Http(e.to_string()))
    }
}
