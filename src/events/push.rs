//! Push delivery (RFC 8935): each receiver in `[[events.push]]` gets its tenant's events, one
//! SET per `POST` (`application/secevent+jwt`), in order. A 202 is success; anything else, or
//! no answer in time, is retried with exponential backoff and jitter until it is accepted or
//! pruned (`[events] retention_days`). Each receiver has its own thread, so a receiver that
//! is down holds up nobody else and never the SCIM API.
//!
//! Delivery state is the receiver's consumer position in the database, so it survives
//! restarts: at least once — after a kill a few SETs may be sent again (the `jti` lets the
//! receiver drop repeats). With several scimlite processes on one database, a lease in the
//! database lets one process at a time push to a receiver; a process that dies holding it
//! is replaced within the lease (10 s), one that stops hands it over at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Events;

/// Most events read from the outbox at a time, and so most sent again after a kill.
const PUSH_BATCH: usize = 50;

/// One `[[events.push]]` receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub tenant: String,
    pub url: String,
    /// Sent as the `Authorization` header.
    pub authorization: Option<String>,
}

impl Receiver {
    /// Its position in the database, named by tenant and URL: changing a receiver's URL
    /// starts it afresh.
    pub fn consumer(&self) -> String {
        format!("push:{}:{}", self.tenant, self.url)
    }
}

/// How a receiver's delivery is tuned; the defaults suit production, tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A receiver has this long to answer one POST.
    pub timeout: Duration,
    /// The first retry's wait; each failure doubles it, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long an idle receiver waits between looks at the outbox.
    pub idle: Duration,
    /// How long one process holds the right to push to a receiver before renewing it.
    pub lease: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            idle: Duration::from_millis(250),
            lease: Duration::from_secs(10),
        }
    }
}

/// The wait after `failures` failures in a row: doubling, capped, with ±20 % jitter so that
/// receivers (and instances) do not retry in step.
pub fn backoff(timing: &Timing, failures: u32) -> Duration {
    let base = timing
        .first_backoff
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(timing.max_backoff);
    let mut r = [0u8; 2];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) * 0.4 - 0.2,
        Err(_) => 0.0,
    };
    base.mul_f64(1.0 + jitter)
}

/// What one POST came to.
enum Outcome {
    Accepted,
    Refused(String),
}

fn post(agent: &ureq::Agent, receiver: &Receiver, set: &str) -> Outcome {
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(&receiver.url)
        .header("Content-Type", "application/secevent+jwt")
        .header("Accept", "application/json");
    if let Some(a) = &receiver.authorization {
        req = req.header("Authorization", a);
    }
    let req = match req.body(set.as_bytes().to_vec()) {
        Ok(r) => r,
        Err(e) => return Outcome::Refused(format!("cannot build the request: {e}")),
    };
    match agent.run(req) {
        Ok(mut resp) if resp.status().as_u16() == 202 => {
            let _ = resp.body_mut().read_to_vec();
            Outcome::Accepted
        }
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            // RFC 8935 §2.3: an error body names the code and describes it.
            let described = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    Some(format!(
                        "{}: {}",
                        v.get("err")?.as_str()?,
                        v.get("description").and_then(|d| d.as_str()).unwrap_or("")
                    ))
                })
                .unwrap_or_else(|| body.chars().take(200).collect());
            Outcome::Refused(format!("HTTP {status} {described}").trim().to_string())
        }
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// Starts one thread per receiver; they stop when `stop` is set.
pub fn start(
    events: Arc<Events>,
    receivers: Vec<Receiver>,
    timing: Timing,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    // This process's name in the leases.
    let owner = uuid::Uuid::now_v7().to_string();
    receivers
        .into_iter()
        .map(|receiver| {
            let (events, stop, owner) = (events.clone(), stop.clone(), owner.clone());
            std::thread::spawn(move || deliver(&events, &receiver, timing, &owner, &stop))
        })
        .collect()
}

/// Sleeps up to `d`, waking early when `stop` is set.
fn pause(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

fn deliver(events: &Events, receiver: &Receiver, timing: Timing, owner: &str, stop: &AtomicBool) {
    let consumer = receiver.consumer();
    // Under a full load the IdPs' requests go first and the receiver catches up after,
    // rather than every request slowing down to the receiver's pace.
    crate::priority::lower_this_thread();
    // A timeout per step, not for the whole call (`timeout_global`): under a whole-call
    // timeout ureq 3.5 resolves the host on a thread of its own for every request, a thread
    // created per event pushed.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(timing.timeout))
        .timeout_send_request(Some(timing.timeout))
        .timeout_send_body(Some(timing.timeout))
        .timeout_recv_response(Some(timing.timeout))
        .timeout_recv_body(Some(timing.timeout))
        .user_agent(concat!("scimlite/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let store = events.store();
    let mut failures: u32 = 0;
    let mut lease_until = Instant::now();
    // The last event accepted but not yet recorded as delivered (events go out in order, so
    // one `seq` says it all): a kill before it is recorded sends a few again (at least once).
    let mut delivered: Option<i64> = None;
    let record = |delivered: &mut Option<i64>| {
        if let Some(seq) = *delivered {
            match store.consumer_delivered(&consumer, seq) {
                Ok(()) => *delivered = None,
                Err(e) => log::warn!("event receiver {}: recording deliveries: {e}", receiver.url),
            }
        }
    };
    log::info!(
        "pushing provisioning events of tenant {} to {}",
        receiver.tenant,
        receiver.url
    );
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= lease_until {
            let now = time::OffsetDateTime::now_utc();
            let until = now + timing.lease;
            match store.lease_consumer(
                &consumer,
                &receiver.tenant,
                owner,
                &crate::store::format_utc_millis(now),
                &crate::store::format_utc_millis(until),
            ) {
                Ok(true) => lease_until = Instant::now() + timing.lease / 2,
                Ok(false) => {
                    // Another instance pushes to this receiver; record what we sent first.
                    record(&mut delivered);
                    pause(timing.lease / 2, stop);
                    continue;
                }
                Err(e) => {
                    log::warn!("event receiver {}: lease: {e}", receiver.url);
                    pause(timing.first_backoff, stop);
                    continue;
                }
            }
        }
        record(&mut delivered);
        let batch = match store.poll_events(&consumer, &receiver.tenant, &[], PUSH_BATCH) {
            Ok((list, _)) => list,
            Err(e) => {
                // Not recorded: those SETs may be sent again, which the jti makes harmless.
                log::warn!("event receiver {}: reading the outbox: {e}", receiver.url);
                pause(timing.first_backoff, stop);
                continue;
            }
        };
        if batch.is_empty() {
            pause(timing.idle, stop);
            continue;
        }
        for event in batch {
            if stop.load(Ordering::SeqCst) || Instant::now() >= lease_until {
                break;
            }
            let set = match events.set(&event) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("event {}: cannot sign: {e}", event.jti);
                    pause(timing.max_backoff, stop);
                    break;
                }
            };
            match post(&agent, receiver, &set) {
                Outcome::Accepted => {
                    failures = 0;
                    delivered = Some(event.seq);
                }
                Outcome::Refused(why) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(&timing, failures);
                    log::warn!(
                        "event receiver {} refused {} ({why}); retrying in {:.1} s",
                        receiver.url,
                        event.jti,
                        wait.as_secs_f64()
                    );
                    if let Err(e) = store.consumer_failed(&consumer, &why) {
                        log::warn!("event receiver {}: {e}", receiver.url);
                    }
                    pause(wait, stop);
                    break;
                }
            }
        }
    }
    record(&mut delivered);
    // Hand the receiver over at once rather than when the lease runs out: a lease ending in
    // the past is free. (After a kill, the next process waits out the lease instead.)
    let now = crate::store::format_utc_millis(time::OffsetDateTime::now_utc());
    if let Err(e) = store.lease_consumer(
        &consumer,
        &receiver.tenant,
        owner,
        &now,
        "1970-01-01T00:00:00.000Z",
    ) {
        log::warn!("event receiver {}: releasing the lease: {e}", receiver.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let t = Timing::default();
        for (failures, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (6, 32.0),
            (10, 60.0),
            (40, 60.0),
        ] {
            let d = backoff(&t, failures).as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{failures}: {d}"
            );
        }
    }
}
