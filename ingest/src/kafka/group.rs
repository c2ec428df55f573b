//! What the consumers in a group (the collector's, the materializer's) share: librdkafka's
//! errors as log lines, rebalances applied without a call that can wait forever, and a
//! close that cannot hold up a shutdown.
//!
//! librdkafka serves the rebalance callbacks of a closing consumer while its group is
//! terminating; a call that waits on the group's own thread from there
//! (`rd_kafka_rebalance_protocol`, `rd_kafka_assignment`) can then wait forever
//! (confluentinc/librdkafka#4041, #4884). So the rebalance protocol comes from the
//! configuration, not from the consumer, and closing is bounded.

use std::ops::Deref;
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;

use super::KafkaConfig;

/// How long a stopping collector or materializer waits for its consumer to leave the group.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka's global errors: the end of a partition (`--until-end`) is not one; a broker
/// that cannot be reached is retried, so it is a warning.
pub(crate) fn log_client_error(error: KafkaError, reason: &str) {
    use rdkafka::error::KafkaError::{Global, PartitionEOF};
    use rdkafka::types::RDKafkaErrorCode::{
        AllBrokersDown, BrokerTransportFailure, PartitionEOF as Eof,
    };
    match error {
        PartitionEOF(_) | Global(Eof) => {}
        Global(AllBrokersDown | BrokerTransportFailure) => {
            tracing::warn!("Kafka: {error}: {reason} (retrying)")
        }
        _ => tracing::error!("Kafka: {error}: {reason}"),
    }
}

/// The partition numbers of a list.
pub(crate) fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Whether the configured assignment strategy is cooperative (`cooperative-sticky`, or the
/// KIP-848 `group.protocol=consumer`, which is always incremental).
pub(crate) fn cooperative(cfg: &KafkaConfig) -> bool {
    cfg.options.iter().any(|(k, v)| {
        (k == "partition.assignment.strategy" && v.contains("cooperative"))
            || (k == "group.protocol" && v.eq_ignore_ascii_case("consumer"))
    })
}

/// Applies a rebalance from a consumer context's `rebalance` callback: an assignment starts
/// the partitions `start` makes of `tpl` (with their offsets), a revocation or an error
/// unassigns. A failure is logged (librdkafka retries the rebalance).
pub(crate) fn rebalance<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    err: RDKafkaRespErr,
    tpl: &TopicPartitionList,
    cooperative: bool,
    start: impl FnOnce(&TopicPartitionList) -> KafkaResult<TopicPartitionList>,
) {
    use RDKafkaRespErr::{
        RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS as ASSIGN,
        RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS as REVOKE,
    };
    let result = match err {
        ASSIGN => {
            tracing::info!(partitions = ?partitions(tpl), "assigned");
            start(tpl).and_then(|at| {
                if cooperative {
                    c.incremental_assign(&at)
                } else {
                    c.assign(&at)
                }
            })
        }
        REVOKE => {
            tracing::info!(partitions = ?partitions(tpl), "revoked");
            if cooperative {
                c.incremental_unassign(tpl)
            } else {
                c.unassign()
            }
        }
        other => {
            tracing::warn!(error = ?other, "rebalance error; unassigning");
            c.unassign()
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "applying a rebalance failed");
    }
}

/// A consumer in a group whose drop leaves the group in at most [`CLOSE_TIMEOUT`]: past
/// that, the close goes on in the background and the drop returns with an error logged.
/// What is stored never depends on the close (offsets are committed, or positions stored,
/// after each batch), so a consumer that cannot close must not hold up a shutdown.
pub(crate) struct GroupConsumer<C: ConsumerContext + 'static>(Option<BaseConsumer<C>>);

impl<C: ConsumerContext + 'static> GroupConsumer<C> {
    pub(crate) fn new(consumer: BaseConsumer<C>) -> Self {
        GroupConsumer(Some(consumer))
    }
}

impl<C: ConsumerContext + 'static> Deref for GroupConsumer<C> {
    type Target = BaseConsumer<C>;

    fn deref(&self) -> &BaseConsumer<C> {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<C: ConsumerContext + 'static> Drop for GroupConsumer<C> {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        let (closed_tx, closed) = std::sync::mpsc::sync_channel::<()>(0);
        // BaseConsumer's own drop closes it: leaves the group, serving the callbacks.
        let closing = std::thread::Builder::new()
            .name("callstate-kafka-close".into())
            .spawn(move || {
                drop(consumer);
                drop(closed_tx);
            });
        let Ok(closing) = closing else { return };
        match closed.recv_timeout(CLOSE_TIMEOUT) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::error!(
                "a Kafka consumer did not leave its group within {} s; going on without \
                 waiting (what it read is stored, with its position)",
                CLOSE_TIMEOUT.as_secs()
            ),
            _ => {
                let _ = closing.join();
            }
        }
    }
}
