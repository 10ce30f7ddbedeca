//! The SMTP channel of notifications (lettre), and the choice of channel from the settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use projections::integration::{Channel, ChannelError, LogChannel, Message};
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Email through an SMTP server (`SMTP_URL`: `smtp://` with optional `?tls=required`, or
/// `smtps://`; TLS by rustls with the webpki roots).
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpChannel {
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("SMTP_URL is not a valid SMTP URL (smtp://host:port or smtps://user:pass@host)")?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from.parse().with_context(|| format!("NOTIFY_FROM is not an email address: {from:?}"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &Message) -> Result<(), ChannelError> {
        let address = message
            .to_email
            .parse()
            .map_err(|e| ChannelError::Permanent(format!("the recipient's address is not valid: {e}")))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(Some(message.to_name.clone()), address))
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| ChannelError::Permanent(format!("cannot build the email: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(ChannelError::Permanent(format!("SMTP refused: {error}"))),
            Err(error) => Err(ChannelError::Transient(format!("SMTP: {error}"))),
        }
    }
}

/// SMTP when `SMTP_URL` is set, else the log.
pub fn channel(settings: &Settings) -> anyhow::Result<Arc<dyn Channel>> {
    match &settings.smtp_url {
        Some(url) => Ok(Arc::new(SmtpChannel::new(url.expose_secret(), &settings.notify_from)?)),
        None => Ok(Arc::new(LogChannel)),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use uuid::Uuid;

    use super::*;

    /// Just enough of an SMTP server to accept one message: the transcript of DATA.
    async fn receive_one(listener: TcpListener) -> String {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 test ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" | "HELO" => write.write_all(b"250 test\r\n").await.unwrap(),
                "MAIL" | "RCPT" | "RSET" | "NOOP" => write.write_all(b"250 ok\r\n").await.unwrap(),
                "DATA" => {
                    write.write_all(b"354 go on\r\n").await.unwrap();
                    while let Some(line) = lines.next_line().await.unwrap() {
                        if line == "." {
                            break;
                        }
                        data.push_str(&line);
                        data.push('\n');
                    }
                    write.write_all(b"250 queued\r\n").await.unwrap();
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => write.write_all(b"502 not implemented\r\n").await.unwrap(),
            }
        }
        data
    }

    fn message(to: &str) -> Message {
        Message {
            notification_id: Uuid::now_v7(),
            recipient_id: Uuid::now_v7(),
            to_email: to.into(),
            to_name: "Bob Buyer".into(),
            subject: "Your order ABCD1234 is confirmed".into(),
            body: "Hello Bob Buyer,\n\nthank you.\n".into(),
        }
    }

    #[tokio::test]
    async fn smtp_channel_sends_the_rendered_message() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(receive_one(listener));
        let channel = SmtpChannel::new(&format!("smtp://127.0.0.1:{port}"), "Agora <no-reply@agora.test>").unwrap();
        channel.send(&message("bob@example.test")).await.expect("sent");
        let data = tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap();
        assert!(data.contains("Subject: Your order ABCD1234 is confirmed"), "{data}");
        assert!(data.contains("To: \"Bob Buyer\" <bob@example.test>"), "{data}");
        assert!(data.contains("From: Agora <no-reply@agora.test>"), "{data}");
        assert!(data.contains("Hello Bob Buyer,"), "{data}");
    }

    #[tokio::test]
    async fn bad_addresses_fail_for_good_and_a_closed_port_for_now() {
        let channel = SmtpChannel::new("smtp://127.0.0.1:1", "no-reply@agora.test").unwrap();
        assert!(matches!(channel.send(&message("not an address")).await, Err(ChannelError::Permanent(_))));
        assert!(matches!(channel.send(&message("bob@example.test")).await, Err(ChannelError::Transient(_))));
        assert!(SmtpChannel::new("http://x", "no-reply@agora.test").is_err());
        assert!(SmtpChannel::new("smtp://127.0.0.1:25", "not an address").is_err());
    }
}
