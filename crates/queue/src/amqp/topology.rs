//! The broker objects the queue uses, their names (all derived from the main queue's) and their
//! declarations. Every declaration is idempotent: it is repeated on every new connection, before
//! every publish to a delay queue and on every heartbeat of a held job, because those queues
//! expire when unused.

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use vidsnap_domain::TaskId;

use super::AmqpError;

/// The longest main-queue name: derived names add at most this many bytes
/// (`.hold.{job uuid}.{32-hex token}` is 75), and AMQP names are at most 255 bytes.
const LONGEST_QUEUE_NAME: usize = 255 - 80;

/// The longest delay: RabbitMQ's TTLs are 32-bit milliseconds (~49.7 days); later is clamped.
const LONGEST_DELAY_SECONDS: u64 = 30 * 24 * 3600;

/// How long an idle delay or hold queue outlives the messages it can still hold, before the
/// broker deletes it. Deleting a queue drops its messages, so a queue must never expire before
/// its last message has been dead-lettered: the margin covers the broker's timer lag.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The names of everything declared for one main queue.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// Due jobs; the only queue consumed.
    pub(crate) main: ShortString,
    /// The dead-letter exchange (fanout): explicit dead-letters, rejected messages and messages
    /// past the delivery limit all go through it.
    pub(crate) dlx: ShortString,
    /// Dead jobs, kept for inspection; bound to `dlx`.
    pub(crate) dead: ShortString,
}

impl Names {
    pub(crate) fn new(queue: &str) -> Result<Self, AmqpError> {
        let valid = !queue.is_empty()
            && queue.len() <= LONGEST_QUEUE_NAME
            && !queue.starts_with("amq.")
            && queue
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !valid {
            return Err(AmqpError::Config(format!(
                "queue name {queue:?}: 1 to {LONGEST_QUEUE_NAME} of a-z A-Z 0-9 . - _ :, \
                 not starting with \"amq.\""
            )));
        }
        Ok(Self {
            main: short(queue.to_owned()),
            dlx: short(format!("{queue}.dlx")),
            dead: short(format!("{queue}.dead")),
        })
    }

    /// The queue holding jobs for `seconds` before they go to the main queue.
    pub(crate) fn delay(&self, seconds: u64) -> ShortString {
        short(format!("{}.retry.{seconds}", self.main))
    }

    /// The queue holding one job while a worker runs it past the consumer timeout; unique per
    /// lease, so a takeover never shares it with the worker that lost the job.
    pub(crate) fn hold(&self, job: TaskId, token: &str) -> ShortString {
        short(format!("{}.hold.{job}.{token}", self.main))
    }
}

/// Every name is built from a validated main-queue name plus a bounded suffix, so it fits.
fn short(name: String) -> ShortString {
    let mut name = name;
    name.truncate(255);
    ShortString::try_new(name).unwrap_or_else(|_| ShortString::from(""))
}

/// The delay queue for a job due `delay` from now: `None` when it is due now, else the delay in
/// whole seconds rounded **up** to four significant bits (1..=16 exact, then 18, 20, .. 32, 36,
/// ..), so it is never early and at most 1/8 late, and jittered backoffs share a few dozen
/// queues instead of creating one per job.
pub(crate) fn delay_bucket(delay: Duration) -> Option<u64> {
    if delay.is_zero() {
        return None;
    }
    let seconds = delay
        .as_millis()
        .div_ceil(1000)
        .min(u128::from(LONGEST_DELAY_SECONDS));
    let seconds = u64::try_from(seconds).unwrap_or(LONGEST_DELAY_SECONDS);
    let bits = u64::BITS - seconds.leading_zeros();
    let Some(shift) = bits.checked_sub(4).filter(|&shift| shift > 0) else {
        return Some(seconds);
    };
    let step = 1u64 << shift;
    Some(seconds.div_ceil(step) * step)
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn millis(duration: Duration) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions::durable()
}

/// Declares the dead-letter exchange, the dead queue and the main queue.
///
/// The main queue is a quorum queue: durable and replicated, the type RabbitMQ recommends for
/// data that matters, and the one that counts deliveries (`x-delivery-count`) and dead-letters a
/// message redelivered `delivery_limit` times (a job that kills every worker that takes it).
pub(crate) async fn declare(
    channel: &Channel,
    names: &Names,
    delivery_limit: u32,
) -> lapin::Result<()> {
    channel
        .exchange_declare(
            names.dlx.clone(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(names.dead.clone(), durable(), FieldTable::default())
        .await?;
    channel
        .queue_bind(
            names.dead.clone(),
            names.dlx.clone(),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments
        .insert("x-queue-type".into(), text("quorum"))
        .insert("x-dead-letter-exchange".into(), text(names.dlx.as_str()))
        .insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(delivery_limit.max(1))),
        );
    channel
        .queue_declare(names.main.clone(), durable(), arguments)
        .await?;
    Ok(())
}

/// Arguments of a queue whose messages, once expired, go to the main queue through the default
/// exchange.
fn returning_to_main(names: &Names) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments
        .insert("x-dead-letter-exchange".into(), text(""))
        .insert(
            "x-dead-letter-routing-key".into(),
            text(names.main.as_str()),
        );
    arguments
}

/// Declares `{queue}.retry.{seconds}`: every message waits `seconds`, then is dead-lettered into
/// the main queue. Unused for `seconds` plus a margin after its last declaration (each publish
/// declares it first), the broker deletes it.
pub(crate) async fn declare_delay(
    channel: &Channel,
    names: &Names,
    seconds: u64,
) -> lapin::Result<ShortString> {
    let name = names.delay(seconds);
    let ttl = Duration::from_secs(seconds);
    let mut arguments = returning_to_main(names);
    arguments
        .insert("x-message-ttl".into(), millis(ttl))
        .insert("x-expires".into(), millis(ttl + EXPIRY_MARGIN));
    channel
        .queue_declare(name.clone(), durable(), arguments)
        .await?;
    Ok(name)
}

/// Declares a hold queue: its one message (the held job's copy) returns to the main queue `ttl`
/// after it was published unless a heartbeat replaced it. Each heartbeat declares it again, so it
/// expires only after its holder stopped, once its copy has gone back.
pub(crate) async fn declare_hold(
    channel: &Channel,
    names: &Names,
    name: &ShortString,
    ttl: Duration,
) -> lapin::Result<()> {
    let mut arguments = returning_to_main(names);
    arguments
        .insert("x-message-ttl".into(), millis(ttl))
        .insert("x-expires".into(), millis(ttl + EXPIRY_MARGIN));
    channel
        .queue_declare(name.clone(), durable(), arguments)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_four_significant_bits() {
        let bucket = |ms: u64| delay_bucket(Duration::from_millis(ms));
        assert_eq!(bucket(0), None);
        assert_eq!(bucket(1), Some(1));
        assert_eq!(bucket(1000), Some(1));
        assert_eq!(bucket(1001), Some(2));
        assert_eq!(bucket(16_000), Some(16));
        assert_eq!(bucket(17_000), Some(18));
        assert_eq!(bucket(31_500), Some(32));
        assert_eq!(bucket(33_000), Some(36));
        assert_eq!(bucket(300_000), Some(320));
        for seconds in 1..100_000u64 {
            let rounded = bucket(seconds * 1000).unwrap_or(0);
            assert!(rounded >= seconds, "{seconds} -> {rounded}: early");
            assert!(
                rounded * 8 <= seconds * 9,
                "{seconds} -> {rounded}: > 1/8 late"
            );
        }
        assert_eq!(
            bucket(u64::MAX),
            delay_bucket(Duration::from_secs(LONGEST_DELAY_SECONDS))
        );
    }

    #[test]
    fn names_derive_from_the_main_queue() {
        let names = Names::new("vidsnap.jobs").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names.dead.as_str(), "vidsnap.jobs.dead");
        assert_eq!(names.dlx.as_str(), "vidsnap.jobs.dlx");
        assert_eq!(names.delay(40).as_str(), "vidsnap.jobs.retry.40");
        let long = "q".repeat(LONGEST_QUEUE_NAME);
        let names = Names::new(&long).unwrap_or_else(|e| panic!("{e}"));
        let hold = names.hold(TaskId::new(), &uuid::Uuid::new_v4().simple().to_string());
        assert!(hold.as_str().len() <= 255 && hold.as_str().starts_with(&long));
        for bad in [
            "",
            "amq.jobs",
            "jobs with space",
            &"q".repeat(LONGEST_QUEUE_NAME + 1),
        ] {
            assert!(Names::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
